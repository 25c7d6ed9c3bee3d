"""Readers on MemoryPulsar: where they start, their window, resuming, and lastMessageId."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import rxstargate as rs
from rxstargate.testing import MemoryPulsar
from tests.testing.conftest import Inbox, received


def _fill(pulsar: MemoryPulsar, count: int) -> list[rs.MessageId]:
    return [pulsar.publish("orders", str(i).encode()) for i in range(count)]


def test_readers_start_at_earliest_latest_or_after_a_message_id(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    ids = _fill(pulsar, 5)
    topic = client.topic("orders")
    earliest, after, latest = Inbox(), Inbox(), Inbox()
    topic.observe(start="earliest").subscribe(earliest)
    topic.observe(start=ids[1]).subscribe(after)
    topic.observe(start="latest").subscribe(latest)
    pulsar.wait_until(lambda: len(pulsar.sockets("reader")) == 3)
    pulsar.publish("orders", b"new")
    assert [m.payload for m in received(pulsar, earliest, 6)] == [
        b"0",
        b"1",
        b"2",
        b"3",
        b"4",
        b"new",
    ]
    assert [m.payload for m in received(pulsar, after, 4)] == [b"2", b"3", b"4", b"new"]
    assert [m.payload for m in received(pulsar, latest, 1)] == [b"new"]


def test_a_reader_reads_past_its_window_without_acks(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    _fill(pulsar, 50)
    inbox = Inbox()  # never acks: its credit comes back when on_next returns
    client.topic("orders").observe(start="earliest", max_in_flight=5).subscribe(inbox)
    assert [m.payload for m in received(pulsar, inbox, 50)] == [str(i).encode() for i in range(50)]
    assert pulsar.subscriptions("orders") == []  # a reader leaves no subscription


def test_a_reader_resumes_after_a_cut_without_gaps(pulsar: MemoryPulsar, client: rs.Client) -> None:
    _fill(pulsar, 100)
    inbox = Inbox()
    client.topic("orders").observe(start="earliest", max_in_flight=10).subscribe(inbox)
    pulsar.wait_until(lambda: len(inbox) >= 30)
    assert pulsar.cut() == 1
    got = received(pulsar, inbox, 100)
    assert [m.payload for m in got] == [str(i).encode() for i in range(100)]


def test_a_reader_from_latest_dropped_before_its_first_message_misses_nothing(
    pulsar: MemoryPulsar, client: rs.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = threading.Event()  # the reader asks where "latest" is, right after it opened
    ask = pulsar.connect.last_message_id

    def spy(*args: Any) -> rs.MessageId | None:
        try:
            return ask(*args)
        finally:
            asked.set()

    monkeypatch.setattr(pulsar.connect, "last_message_id", spy)
    _fill(pulsar, 3)
    inbox = Inbox()
    client.topic("orders").observe().subscribe(inbox)
    assert asked.wait(10)
    pulsar.drop_next("message", topic="orders")  # its first delivery is lost with the socket
    pulsar.publish("orders", b"while away")
    assert [m.payload for m in received(pulsar, inbox, 1)] == [b"while away"]


def test_the_last_message_id_comes_from_the_connector(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    topic = client.topic("orders")
    assert topic.last_message_id() is None
    ids = _fill(pulsar, 3)
    assert topic.last_message_id() == ids[-1]
    with pytest.raises(rs.HandshakeError) as caught:
        client.topic("non-persistent://public/default/orders").last_message_id()
    assert caught.value.status_code == 405


def test_a_non_persistent_topic_keeps_nothing_for_later(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    name = "non-persistent://public/default/clicks"
    pulsar.publish(name, b"nobody listened")
    inbox = Inbox(ack=True)
    client.topic(name).observe("sub", start="earliest").subscribe(inbox)

    def heard() -> bool:  # until the consumer's first permit, what is published is dropped
        if not len(inbox):
            pulsar.publish(name, b"heard")
        return len(inbox) > 0

    pulsar.wait_until(heard)
    assert set(inbox.payloads) == {b"heard"}
    assert pulsar.stored(name) == []
    assert inbox.messages[0].topic.persistence is rs.Persistence.NON_PERSISTENT
