"""The receiving core, frames in and frames out: credit, settling, drops, stalls, positions.

No sockets, threads or clocks: each test feeds a ConsumerState or ReaderState what happened
and checks the frames it returns, as a server would read them.
"""

from __future__ import annotations

import doctest
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rxstargate as rs
from rxstargate import _reader_position, _receive_state
from rxstargate._frames import MessageFrame
from rxstargate._receive_state import ConsumerState, Ledger, ReaderState


def wire(entry: int, batch_index: int = -1, ledger: int = 1) -> str:
    return str(rs.MessageId.from_parts(ledger, entry, -1, batch_index))


def frame(message_id: str) -> MessageFrame:
    return MessageFrame(message_id, b"x", {}, "2024-01-01T00:00:00.000Z", 0, None, None)


def permits(frames: Iterable[str | None]) -> int:
    """The credit a server reads from these frames."""
    total = 0
    for text in frames:
        command = json.loads(text) if text else {}
        if command.get("type") == "permit":
            total += command["permitMessages"]
    return total


def commands(frames: Iterable[str | None]) -> list[dict[str, Any]]:
    return [json.loads(text) for text in frames if text]


@pytest.mark.parametrize("module", [_receive_state, _reader_position])
def test_docstring_examples_run(module: Any) -> None:
    assert doctest.testmod(module).failed == 0


# -- consumers ----------------------------------------------------------------------------


def test_a_consumer_asks_for_its_whole_window_when_a_socket_opens() -> None:
    state = ConsumerState(10)
    ledger, frames = state.opened(now=0.0)
    assert commands(frames) == [{"type": "permit", "permitMessages": 10}]
    assert ledger is state.ledger and ledger.alive


def test_a_consumer_returns_credit_in_batches_as_messages_settle() -> None:
    state = ConsumerState(8, batch=2)
    ledger, _ = state.opened(now=0.0)
    for i in range(4):
        assert state.deliver(ledger, i, wire(i)) == ()
    first = state.settle(ledger, 0, True, now=1.0)
    second = state.settle(ledger, 1, True, now=1.0)
    assert first == (json.dumps({"messageId": wire(0)}, separators=(",", ":")), None)
    assert second is not None and permits([second[1]]) == 2


def test_a_nack_names_its_message_and_earns_its_credit_back() -> None:
    state = ConsumerState(1)
    ledger, _ = state.opened(now=0.0)
    state.deliver(ledger, "m", wire(5))
    settle = state.settle(ledger, "m", False, now=0.0)
    assert settle is not None
    assert commands(settle) == [
        {"type": "negativeAcknowledge", "messageId": wire(5)},
        {"type": "permit", "permitMessages": 1},
    ]


def test_settling_twice_sends_nothing_the_second_time() -> None:
    state = ConsumerState(4)
    ledger, _ = state.opened(now=0.0)
    state.deliver(ledger, "m", wire(0))
    assert state.settle(ledger, "m", True, now=0.0) is not None
    assert state.settle(ledger, "m", True, now=0.0) is None
    assert state.settle(ledger, "m", False, now=0.0) is None


def test_a_consumer_drops_the_frames_of_a_lost_socket_and_its_messages_raise_ack_error_once() -> (
    None
):
    state = ConsumerState(4)
    old, _ = state.opened(now=0.0)
    state.deliver(old, "held", wire(0))
    assert state.lost(old) == 1  # the broker redelivers it
    assert state.lost(old) == 0
    assert state.deliver(old, "queued", wire(1)) is None  # not delivered: it comes again
    new, frames = state.opened(now=1.0)
    assert permits(frames) == 4  # a fresh window: the old socket's messages no longer count
    with pytest.raises(rs.AckError, match="closed"):
        state.settle(old, "held", True, now=2.0)
    assert state.settle(old, "held", True, now=2.0) is None
    assert new.alive and not old.alive


def test_a_frame_that_does_not_decode_returns_its_credit_even_as_the_server_runs_dry() -> None:
    """Regression: the skip's own delivery could flush owed credit that was never sent."""
    state = ConsumerState(8, batch=2)
    ledger, frames = state.opened(now=0.0)
    granted = permits(frames)
    for i in range(7):
        state.deliver(ledger, i, wire(i))
    settle = state.settle(ledger, 0, True, now=0.0)  # one owed, below the batch
    assert settle is not None and settle[1] is None
    granted += permits(state.skip(ledger))  # the eighth frame uses the server's last credit
    for i in range(1, 7):
        settle = state.settle(ledger, i, True, now=0.0)
        assert settle is not None
        granted += permits([settle[1]])
    consumed = 8
    assert granted + state.credit.owed == 8 + consumed


def test_close_ends_settling() -> None:
    consumer = ConsumerState(4)
    ledger, _ = consumer.opened(now=0.0)
    consumer.deliver(ledger, "m", wire(0))
    consumer.close()
    assert consumer.closed and not consumer.saturated
    with pytest.raises(rs.AckError):
        consumer.settle(ledger, "m", True, now=0.0)
    reader = ReaderState(4, "earliest")
    ledger, _ = reader.opened(now=0.0)
    reader.deliver(ledger, "m", wire(0))
    reader.close()
    assert reader.settle(ledger, "m", True, now=0.0) is None


def test_a_stall_is_reported_once_per_stall_and_only_with_all_credit_held() -> None:
    state = ConsumerState(2)
    ledger, _ = state.opened(now=0.0)
    state.deliver(ledger, "a", wire(0))
    assert state.stalled(now=100.0, limit=30.0) is None  # credit left: not a stall
    state.deliver(ledger, "b", wire(1))
    assert state.saturated
    assert state.stalled(now=29.0, limit=30.0) is None
    assert state.stalled(now=31.0, limit=30.0) == 2
    assert state.stalled(now=62.0, limit=30.0) is None  # reported already
    state.settle(ledger, "a", True, now=70.0)
    assert state.stalled(now=71.0, limit=30.0) is None  # over: the next one is reported again
    state.deliver(ledger, "c", wire(2))
    assert state.stalled(now=90.0, limit=30.0) is None
    assert state.stalled(now=101.0, limit=30.0) == 2


def test_a_settle_ends_a_stall_so_the_next_one_is_reported_without_a_check_in_between() -> None:
    # The delivery thread checks only while all credit is held: nothing asks between a settle
    # and the next stall.
    state = ConsumerState(1)
    ledger, _ = state.opened(now=0.0)
    state.deliver(ledger, "a", wire(0))
    assert state.stalled(now=31.0, limit=30.0) == 1
    state.settle(ledger, "a", True, now=40.0)
    state.deliver(ledger, "b", wire(1))
    assert state.stalled(now=71.0, limit=30.0) == 1


def test_a_consumer_returns_nothing_when_on_next_returns() -> None:
    state = ConsumerState(4)
    ledger, _ = state.opened(now=0.0)
    state.deliver(ledger, "m", wire(0))
    assert state.returned(ledger, "m", now=0.0) is None
    assert "m" in ledger.unsettled  # still the pipeline's to settle


# -- readers ------------------------------------------------------------------------------


def test_a_reader_returns_credit_once_on_ack_or_when_on_next_returns() -> None:
    state = ReaderState(5, "earliest")
    ledger, frames = state.opened(now=0.0)
    assert frames == ()  # the window is the server's receiverQueueSize
    state.deliver(ledger, "a", wire(0))
    state.deliver(ledger, "b", wire(1))
    assert commands(state.settle(ledger, "a", False, now=0.0) or ()) == [{"messageId": wire(0)}]
    assert state.returned(ledger, "a", now=0.0) is None
    assert commands(state.returned(ledger, "b", now=0.0) or ()) == [{"messageId": wire(1)}]
    assert not state.saturated and state.stalled(now=1e9, limit=1.0) is None


def test_a_reader_delivers_what_a_dropped_socket_sent_and_settles_nothing_for_it() -> None:
    state = ReaderState(5, "earliest")
    ledger, _ = state.opened(now=0.0)
    kept, _ = state.received(ledger, [frame(wire(0)), frame(wire(1))])
    state.lost(ledger)
    assert state.deliver(ledger, "a", wire(0)) == ()
    assert state.returned(ledger, "a", now=0.0) is None
    assert state.reopen().message_id == wire(1)  # after what it received, delivered or not
    assert len(kept) == 2


def test_a_reader_from_latest_reopens_at_its_pin_and_skips_that_entry_again() -> None:
    state = ReaderState(5, "latest")
    assert state.reopen().message_id is None
    ledger, _ = state.opened(now=0.0)
    assert state.position.needs_pin
    state.position.pinned(rs.MessageId(wire(4)))
    state.lost(ledger)
    assert state.reopen().message_id == wire(4)
    ledger, _ = state.opened(now=1.0)
    batch = [frame(wire(4, i)) for i in range(3)] + [frame(wire(5))]
    kept, frames = state.received(ledger, batch)
    assert [f.message_id for f in kept] == [wire(5)]
    assert commands(frames) == [{"messageId": ""}] * 3  # their credit goes back
    later, frames = state.received(ledger, [frame(wire(3))])
    assert len(later) == 1 and frames == ()  # past the pin, nothing is skipped any more


def test_a_reader_skips_nothing_on_the_socket_it_was_pinned_from() -> None:
    """A message published while the reader asked where it started is delivered."""
    state = ReaderState(5, "latest")
    ledger, _ = state.opened(now=0.0)
    state.position.pinned(rs.MessageId(wire(4)))  # the racing message is entry 4
    kept, _ = state.received(ledger, [frame(wire(4))])
    assert len(kept) == 1


def test_a_reader_of_an_empty_topic_reopens_at_the_earliest_message() -> None:
    state = ReaderState(5, "latest")
    ledger, _ = state.opened(now=0.0)
    state.position.pinned(None)
    state.lost(ledger)
    assert state.reopen().message_id == "earliest"
    assert not state.position.skipping


def test_a_reader_from_an_id_starts_after_it() -> None:
    state = ReaderState(5, wire(9))
    assert state.reopen().message_id == wire(9)
    assert not state.position.needs_pin


# -- properties ---------------------------------------------------------------------------

CONSUMER_EVENTS = ["take", "arrive", "deliver", "settle", "bad", "drop"]


@dataclass
class Consumer:
    """A pull-mode server and a pipeline around a ConsumerState."""

    window: int
    state: ConsumerState = field(init=False)
    ledger: Ledger | None = None
    server_credit: int = 0  # what the live socket's server may still send
    queued: list[tuple[Ledger, str]] = field(default_factory=list)  # received, not delivered
    held: list[tuple[Ledger, int]] = field(default_factory=list)  # delivered, not settled
    sent: int = 0
    tokens: int = 0  # one per delivered message

    def __post_init__(self) -> None:
        self.state = ConsumerState(self.window)

    def grant(self, frames: Iterable[str | None]) -> None:
        self.server_credit += permits(frames)

    def step(self, event: str, count: int, pick: int) -> None:
        """``count`` times ``event`` (as far as it can go), checking after each."""
        for _ in range(count):
            if self.ledger is None:
                self.open()
            elif not self.happen(event, self.ledger, pick):
                return
            self.check()
            pick = pick * 31 + 7

    def open(self) -> None:
        self.ledger, frames = self.state.opened(now=0.0)
        self.server_credit = 0
        self.grant(frames)

    def happen(self, event: str, ledger: Ledger, pick: int) -> bool:
        state = self.state
        if event in ("take", "arrive", "bad") and self.server_credit > 0:
            self.server_credit -= 1
            self.sent += 1
            if event == "bad":
                self.grant(state.skip(ledger))
                return True
            self.queued.append((ledger, wire(self.sent)))
            return event == "arrive" or self.happen("deliver", ledger, pick)
        if event == "deliver" and self.queued:
            source, message_id = self.queued.pop(0)
            self.tokens += 1
            frames = state.deliver(source, self.tokens, message_id)
            if frames is None:
                assert not source.alive
            else:
                self.held.append((source, self.tokens))
                if source is ledger:
                    self.grant(frames)
            return True
        if event == "settle" and self.held:
            source, token = self.held.pop(pick % len(self.held))
            if source.alive:
                settle = state.settle(source, token, bool(pick % 2), now=1.0)
                assert settle is not None
                self.grant([settle[1]])
            else:
                with pytest.raises(rs.AckError):
                    state.settle(source, token, True, now=1.0)
            return True
        if event == "drop":
            state.lost(ledger)
            self.ledger = None  # reopened on the next step
        return False

    def check(self) -> None:
        ledger = self.ledger
        if ledger is None:
            return
        live_held = sum(1 for source, _ in self.held if source is ledger)
        in_transit = sum(1 for source, _ in self.queued if source is ledger)
        assert live_held == len(ledger.unsettled) <= self.window
        # Permits returned equal credit consumed: nothing lost, nothing made up.
        assert live_held + in_transit + self.server_credit + self.state.credit.owed == self.window
        # Never stalled: with nothing held, the server may send.
        assert live_held > 0 or in_transit + self.server_credit > 0


@given(
    st.integers(1, 40),
    st.lists(
        st.tuples(st.sampled_from(CONSUMER_EVENTS), st.integers(1, 40), st.integers(0, 2**16)),
        max_size=100,
    ),
)
def test_a_consumer_never_holds_more_than_its_window_and_returns_every_permit(
    window: int, events: list[tuple[str, int, int]]
) -> None:
    consumer = Consumer(window)
    for event, count, pick in events:
        consumer.step(event, count, pick)


@dataclass
class Topic:
    """A broker's topic for readers: entries of one message or a batch, in order."""

    ids: list[tuple[int, int]] = field(default_factory=list)  # (entry, batch index) in order
    batched: set[int] = field(default_factory=set)

    def publish(self, count: int) -> None:
        entry = len({e for e, _ in self.ids})
        if count == 1:
            self.ids.append((entry, -1))
        else:
            self.batched.add(entry)
            self.ids.extend((entry, i) for i in range(count))

    def cursor(self, message_id: str | None) -> int:
        """Where a reader opened at ``message_id`` starts (an index into ids)."""
        if message_id is None:
            return len(self.ids)
        if message_id == "earliest":
            return 0
        at = rs.MessageId(message_id)
        if at.batch_index < 0 and at.entry_id in self.batched:
            # An entry's id without a batch index: the broker sends the whole entry again.
            return next(i for i, (e, _) in enumerate(self.ids) if e == at.entry_id)
        return self.ids.index((at.entry_id, at.batch_index)) + 1  # exclusive


READER_EVENTS = ["send", "send", "send", "publish", "drop"]


@given(
    st.integers(0, 4),
    st.sampled_from(["earliest", "latest", "id"]),
    st.booleans(),
    st.lists(st.tuples(st.sampled_from(READER_EVENTS), st.integers(1, 4)), max_size=200),
)
def test_a_reader_reopened_at_its_position_never_repeats_or_misses_a_message(
    before: int, start: str, pin_names_batch_index: bool, events: list[tuple[str, int]]
) -> None:
    topic = Topic()
    for count in range(before):
        topic.publish(1 + count % 3)
    begin = wire(*topic.ids[len(topic.ids) // 2]) if start == "id" and topic.ids else None
    state = ReaderState(10, begin or start.replace("id", "earliest"))
    expected_from = topic.cursor(begin or (None if start == "latest" else "earliest"))
    delivered: list[str] = []
    ledger: Ledger | None = None
    cursor = 0

    def reopen() -> tuple[Ledger, int]:
        at = topic.cursor(state.reopen().message_id)
        opened, _ = state.opened(now=0.0)
        if state.position.needs_pin:  # learned right after the first socket opened
            last = topic.ids[-1] if topic.ids else None
            if last is None:
                state.position.pinned(None)
            else:
                index = last[1] if pin_names_batch_index else -1
                state.position.pinned(rs.MessageId(wire(last[0], index)))
        return opened, at

    for event, count in events:
        if ledger is None:
            ledger, cursor = reopen()
        if event == "publish":
            topic.publish(count)
        elif event == "send" and cursor < len(topic.ids):
            frames = [frame(wire(*m)) for m in topic.ids[cursor : cursor + count]]
            cursor += len(frames)
            kept, acks = state.received(ledger, frames)
            for index, item in enumerate(kept):  # delivered, settled (or not), returned
                token = (len(delivered), index)
                assert state.deliver(ledger, token, item.message_id) == ()
                settled = state.settle(ledger, token, True, 0.0) if count % 2 else None
                returned = state.returned(ledger, token, 0.0)
                for result in (settled, returned):  # never both: one ack per message
                    acks += tuple(f for f in result or () if f)
            # Credit: one ack per message the server sent, skipped or delivered.
            assert len(acks) == len(frames)
            delivered.extend(f.message_id for f in kept)
        elif event == "drop":
            state.lost(ledger)
            ledger = None
    if ledger is None:
        ledger, cursor = reopen()
    kept, _ = state.received(ledger, [frame(wire(*m)) for m in topic.ids[cursor:]])
    delivered.extend(f.message_id for f in kept)
    assert delivered == [wire(*m) for m in topic.ids[expected_from:]]
