"""The per-socket ledgers that hide pulsar-lite's spurious copies (no sockets)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rxstargate.local._gateway import _dedup
from rxstargate.local._gateway._dedup import ConsumerLedger, ReaderLedger


def test_a_copy_of_a_held_message_is_dropped() -> None:
    ledger = ConsumerLedger()
    assert ledger.admit(b"a", "m", 0) == (True, False)
    assert ledger.admit(b"a", "m", 0) == (False, False)
    assert ledger.held_count == 1


def test_a_held_message_with_a_higher_redelivery_count_is_a_real_redelivery() -> None:
    ledger = ConsumerLedger()
    ledger.admit(b"a", "m", 0)
    assert ledger.admit(b"a", "m", 1) == (True, True)
    assert ledger.held_count == 1


def test_a_copy_of_an_acked_message_is_dropped_but_a_nacked_one_comes_back() -> None:
    ledger = ConsumerLedger()
    ledger.admit(b"acked", "m", 0)
    ledger.admit(b"nacked", "n", 0)
    assert ledger.settle(b"acked", acked=True) == "m"
    assert ledger.settle(b"nacked", acked=False) == "n"
    assert ledger.admit(b"acked", "m", 1) == (False, False)
    assert ledger.admit(b"nacked", "n", 1) == (True, False)


def test_the_record_of_acked_ids_is_bounded() -> None:
    ledger = ConsumerLedger(acked_bound=3)
    for key in (b"1", b"2", b"3", b"4"):
        ledger.admit(key, key, 0)
        ledger.settle(key, acked=True)
    assert ledger.admit(b"1", b"1", 0) == (True, False)  # forgotten: the oldest went first
    assert ledger.admit(b"4", b"4", 0) == (False, False)


def test_expired_held_messages_are_handed_back_with_a_higher_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(_dedup, "time", SimpleNamespace(monotonic=lambda: clock.now))
    ledger = ConsumerLedger(ack_timeout_millis=1)
    ledger.admit(b"a", "m", 0)
    assert ledger.expired() == []
    clock.now += 0.01  # past the ack timeout, in the ledger's time
    (key, held), *rest = ledger.expired()
    assert rest == []
    assert (key, held.redelivery_count) == (b"a", 1)
    assert ledger.held_count == 1


def test_no_ack_timeout_means_nothing_expires() -> None:
    ledger = ConsumerLedger()
    ledger.admit(b"a", "m", 0)
    assert ledger.expired() == []


def test_a_reader_drops_anything_at_or_before_its_last_position_per_partition() -> None:
    ledger = ReaderLedger()
    assert ledger.admit(-1, (5, 1, -1))
    assert ledger.admit(-1, (5, 2, -1))
    assert not ledger.admit(-1, (5, 2, -1))
    assert not ledger.admit(-1, (5, 1, -1))
    assert ledger.admit(0, (5, 1, -1))  # another partition has its own position
    assert ledger.admit(-1, (6, 0, -1))
