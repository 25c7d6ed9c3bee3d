"""The producing core, frame-in and frames-out: no socket, thread or clock."""

from __future__ import annotations

import base64
import doctest
import importlib
import json
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from marshmallow import Schema, fields

import rxstargate as rs
from rxstargate._frames import decode_producer_ack
from rxstargate._produce_state import RELAYED_OK, Admission, ProduceState, Submission

LIMIT = 1024 * 1024


def ok(context: str, entry: int = 1) -> str:
    """The broker's ack of a stored message."""
    return json.dumps(
        {"result": "ok", "messageId": str(rs.MessageId.from_parts(7, entry)), "context": context}
    )


def failure(context: str | None, error: str = "queue full") -> str:
    """The broker's answer to a message it could not store."""
    return json.dumps({"result": "send-error:8", "errorMsg": error, "context": context})


def payload_of(frame: bytes) -> bytes:
    return base64.b64decode(json.loads(frame)["payload"])


def context_of(frame: bytes) -> str:
    context: str = json.loads(frame)["context"]
    return context


def open_state(max_in_flight: int = 3, **kwargs: Any) -> ProduceState[Any]:
    state: ProduceState[Any] = ProduceState(max_in_flight, kwargs.pop("limit", LIMIT), **kwargs)
    assert state.reopened() == []
    return state


def admitted(state: ProduceState[Any], value: Any, handle: Any = None) -> Submission[Any]:
    submission = state.submission(value, handle)
    assert state.admit(submission) is Admission.SEND
    return submission


def test_each_message_gets_the_next_context_id_and_its_frame_is_sent_at_once() -> None:
    state = open_state()
    first = admitted(state, b"a")
    second = admitted(state, rs.OutgoingMessage("b", key="k", correlation="mine"))
    assert (first.context, second.context) == ("1", "2")
    assert json.loads(first.frame) == {"payload": base64.b64encode(b"a").decode(), "context": "1"}
    assert json.loads(second.frame)["key"] == "k"
    assert second.correlation == "mine"
    assert state.pending == 2


def test_an_ok_settles_its_message_with_the_stored_id_and_its_correlation() -> None:
    state = open_state()
    sent = admitted(state, rs.OutgoingMessage(b"x", correlation=("order", 1)), handle="waiter")
    assert state.receive(ok("1", entry=9)) is sent
    assert sent.ack == rs.ProducerAck("1", rs.MessageId.from_parts(7, 9), "ok", None)
    assert sent.ack is not None and sent.ack.correlation == ("order", 1)
    assert sent.handle == "waiter"
    assert state.pending == 0


def test_a_broker_failure_settles_the_message_as_failed() -> None:
    state = open_state()
    sent = admitted(state, b"x")
    assert state.receive(failure("1")) is sent
    assert sent.ack is not None
    assert (sent.ack.ok, sent.ack.result, sent.ack.error_message) == (
        False,
        "send-error:8",
        "queue full",
    )


def test_an_ok_ack_only_a_relay_would_see_is_shared_and_other_acks_are_built() -> None:
    state = open_state()
    relayed, failed, plain = admitted(state, b"a"), admitted(state, b"b"), admitted(state, b"c")
    relayed.relay = failed.relay = object()
    assert state.acked(decode_producer_ack(ok("1")), relayed_unseen=True) is relayed
    assert state.acked(decode_producer_ack(failure("2")), relayed_unseen=True) is failed
    assert state.acked(decode_producer_ack(ok("3", entry=4)), relayed_unseen=True) is plain
    assert relayed.ack is RELAYED_OK and relayed.ack.ok
    assert failed.ack == rs.ProducerAck("2", None, "send-error:8", "queue full")
    assert plain.ack == rs.ProducerAck("3", rs.MessageId.from_parts(7, 4), "ok", None)
    assert state.pending == 0


def test_a_settled_message_lets_go_of_its_frame_while_its_ack_waits_for_delivery() -> None:
    state = open_state()
    stored, failed = admitted(state, b"a" * 1000), admitted(state, b"b" * 1000)
    left = admitted(state, b"c" * 1000)
    assert state.receive(ok("1")) is stored
    assert state.receive(failure("2")) is failed
    assert state.close() == [left]
    # each still holds its slot until delivered, but no longer the frame nothing will send
    assert (stored.frame, failed.frame, left.frame) == (b"", b"", b"")
    assert state.slots_free == 0


def test_a_slot_is_held_until_the_ack_was_delivered() -> None:
    state = open_state(max_in_flight=2)
    first, _ = admitted(state, b"1"), admitted(state, b"2")
    third = state.submission(b"3", None)
    assert state.admit(third) is Admission.NO_SLOT
    assert state.receive(ok("1")) is first
    assert state.admit(third) is Admission.NO_SLOT  # acked, but its observers have not seen it
    assert state.slots_free == 0
    state.delivered([first])
    assert state.admit(third) is Admission.SEND
    assert state.pending == 2


@pytest.mark.parametrize(
    ("value", "result", "why"),
    [
        (12, rs.ClientResult.INVALID_PAYLOAD, "payload must be bytes"),
        (rs.OutgoingMessage(b"x", key=5), rs.ClientResult.INVALID_PAYLOAD, "key"),  # type: ignore[arg-type]
        (b"x" * 2000, rs.ClientResult.PAYLOAD_TOO_LARGE, "over the server's limit of 1000"),
    ],
)
def test_a_message_that_cannot_be_sent_is_refused_without_a_slot(
    value: Any, result: rs.ClientResult, why: str
) -> None:
    state = open_state(max_in_flight=1, limit=1000)
    refused = state.submission(value, None)
    assert state.admit(refused) is Admission.REFUSED
    assert refused.ack is not None and refused.ack.result == result
    assert why in (refused.ack.error_message or "")
    assert refused.frame == b""
    assert state.slots_free == 1
    assert not state.idle  # until the failed ack was delivered
    state.delivered([refused])
    assert state.idle


def test_a_schema_that_refuses_an_object_fails_that_message_alone() -> None:
    class Order(Schema):
        id = fields.Integer(required=True)

    state = open_state(schema=Order())
    refused = state.submission({"id": "one"}, None)
    assert state.admit(refused) is Admission.REFUSED
    stored = admitted(state, {"id": 1})
    assert payload_of(stored.frame) == b'{"id":1}'
    assert (refused.context, stored.context) == ("1", "2")


def test_while_the_connection_is_down_messages_are_held_then_sent_by_the_reopen() -> None:
    state = open_state(max_in_flight=10)
    for payload in (b"a", b"b"):
        admitted(state, payload)
    state.receive(ok("1"))
    state.lost()
    held = state.submission(b"c", None)
    assert state.admit(held) is Admission.HELD
    frames = state.reopened()
    assert [(context_of(f), payload_of(f)) for f in frames] == [("2", b"b"), ("3", b"c")]
    assert state.admit(state.submission(b"d", None)) is Admission.SEND


def test_a_second_ok_after_a_resend_is_ignored_and_a_stray_failure_is_reported() -> None:
    state = open_state()
    sent = admitted(state, b"x")
    state.lost()
    state.reopened()
    assert state.receive(ok("1")) is sent
    assert state.receive(ok("1")) is None  # stored twice: the broker answered both copies
    assert isinstance(state.receive(failure("1")), rs.ProtocolError)
    assert isinstance(state.receive(failure(None)), rs.ProtocolError)
    assert isinstance(state.receive(ok("99")), type(None))


@pytest.mark.parametrize("text", ["not json", "[]", '{"result": 3}', '{"context": "1"}'])
def test_a_frame_that_is_not_an_ack_is_a_protocol_error_and_changes_nothing(text: str) -> None:
    state = open_state()
    admitted(state, b"x")
    assert isinstance(state.receive(text), rs.ProtocolError)
    assert state.pending == 1


def test_close_fails_every_pending_message_once_and_keeps_the_failure() -> None:
    state = open_state()
    first, second = admitted(state, b"a"), admitted(state, b"b")
    state.receive(ok("1"))
    error = rs.ConnectionClosedError("policy", 1008)
    assert state.close(error) == [second]
    assert second.ack is not None and second.ack.result == rs.ClientResult.CLOSED
    assert "policy" in (second.ack.error_message or "")
    assert first.ack is not None and first.ack.ok
    assert state.failure is error and state.closed
    assert state.close() == []
    assert state.receive(ok("2")) is None  # too late: it was reported failed
    assert state.admit(state.submission(b"c", None)) is Admission.CLOSED
    assert state.reopened() == []
    state.delivered([first, second])
    assert state.idle


def test_a_normal_close_has_no_failure() -> None:
    state = open_state()
    admitted(state, b"a")
    [closed] = state.close()
    assert closed.ack is not None and "closed before the broker answered" in str(
        closed.ack.error_message
    )
    assert state.failure is None


def test_refuse_settles_a_message_that_was_never_admitted() -> None:
    state = open_state(max_in_flight=1)
    admitted(state, b"a")
    waiting = state.submission(rs.OutgoingMessage(b"b", correlation=2), None)
    assert state.admit(waiting) is Admission.NO_SLOT
    state.refuse(waiting, rs.ClientResult.TIMEOUT, "no slot within 1.0 s")
    assert waiting.ack == rs.ProducerAck(
        "2", None, rs.ClientResult.TIMEOUT.value, "no slot within 1.0 s"
    )
    assert waiting.ack is not None and waiting.ack.correlation == 2


def test_a_message_is_settled_and_delivered_only_once() -> None:
    state = open_state()
    sent = admitted(state, b"a")
    with pytest.raises(ValueError, match="admitted or settled already"):
        state.admit(sent)
    with pytest.raises(ValueError, match="admitted or settled already"):
        state.refuse(sent, rs.ClientResult.CLOSED, "twice")
    with pytest.raises(ValueError, match="not settled"):
        state.delivered([sent])
    state.receive(ok("1"))
    state.delivered([sent])
    with pytest.raises(ValueError, match="delivered already"):
        state.delivered([sent])


@pytest.mark.parametrize("module", ["_produce_state", "_producer_link"])
def test_docstring_examples_run(module: str) -> None:
    imported = importlib.import_module(f"rxstargate.{module}")
    failures, tried = doctest.testmod(imported, optionflags=doctest.ELLIPSIS)
    assert (failures, tried > 0) == (0, True)


# -- invariants, whatever the interleaving -------------------------------------------------


class ProducerRun(RuleBasedStateMachine):
    """Messages, acks, broker failures, drops, reopens, deliveries and a close, in any order."""

    @initialize(max_in_flight=st.integers(min_value=1, max_value=4))
    def start(self, max_in_flight: int) -> None:
        self.state: ProduceState[int] = ProduceState(max_in_flight, 200)
        self.state.reopened()
        self.count = 0
        self.waiting: list[Submission[int]] = []  # handed over, not admitted (no slot)
        self.pending: list[Submission[int]] = []  # admitted, in admission order
        self.on_wire: list[str] = []  # contexts written on the current connection
        self.settled: list[Submission[int]] = []
        self.fates: dict[int, int] = {}  # handle -> times settled
        self.all: list[Submission[int]] = []

    def _settled(self, submission: Submission[int]) -> None:
        assert submission.ack is not None
        self.fates[submission.handle] = self.fates.get(submission.handle, 0) + 1
        self.settled.append(submission)
        if submission in self.pending:
            self.pending.remove(submission)

    @rule(payload=st.one_of(st.binary(max_size=8), st.integers(), st.binary(min_size=300)))
    def hand_over(self, payload: Any) -> None:
        self.count += 1
        submission = self.state.submission(payload, self.count)
        self.all.append(submission)
        self.waiting.append(submission)
        self.admit_waiting()

    def admit_waiting(self) -> None:
        for submission in list(self.waiting):
            admission = self.state.admit(submission)
            if admission is Admission.NO_SLOT:
                return
            self.waiting.remove(submission)
            if admission is Admission.CLOSED:
                self.state.refuse(submission, rs.ClientResult.CLOSED, "closed")
                self._settled(submission)
            elif admission is Admission.REFUSED:
                self._settled(submission)
            else:
                self.pending.append(submission)
                if admission is Admission.SEND:
                    self.on_wire.append(submission.context)

    @rule(data=st.data(), stored=st.booleans())
    @precondition(lambda self: self.on_wire)
    def broker_answers(self, data: st.DataObject, stored: bool) -> None:
        context = data.draw(st.sampled_from(self.on_wire))
        self.on_wire.remove(context)
        outcome = self.state.receive(ok(context) if stored else failure(context))
        if isinstance(outcome, Submission):
            self._settled(outcome)
        else:
            assert outcome is None or not stored  # a second answer to a message sent twice

    @rule()
    @precondition(lambda self: self.waiting)
    def a_sender_gives_up_waiting_for_a_slot(self) -> None:
        submission = self.waiting.pop(0)
        self.state.refuse(submission, rs.ClientResult.TIMEOUT, "no slot in time")
        self._settled(submission)

    @rule(data=st.data())
    @precondition(lambda self: any(s.ack is not None and s.ack.ok for s in self.all))
    def the_broker_answers_a_copy_again(self, data: st.DataObject) -> None:
        stored = [s for s in self.all if s.ack is not None and s.ack.ok]
        again = data.draw(st.sampled_from(stored))
        assert self.state.receive(ok(again.context)) is None

    @rule()
    def connection_drops(self) -> None:
        self.state.lost()
        self.on_wire = []

    @rule()
    def connection_reopens(self) -> None:
        frames = self.state.reopened()
        if self.state.closed:
            assert frames == []
            return
        assert [context_of(f) for f in frames] == [s.context for s in self.pending]
        assert frames == [s.frame for s in self.pending]
        self.on_wire = [context_of(f) for f in frames]

    @rule(data=st.data())
    @precondition(lambda self: self.settled)
    def acks_delivered(self, data: st.DataObject) -> None:
        count = data.draw(st.integers(min_value=1, max_value=len(self.settled)))
        delivered, self.settled = self.settled[:count], self.settled[count:]
        self.state.delivered(delivered)
        self.admit_waiting()

    @rule()
    def close(self) -> None:
        for submission in self.state.close():
            self._settled(submission)
        self.admit_waiting()

    @invariant()
    def never_more_than_max_in_flight(self) -> None:
        assert self.state.pending == len(self.pending) <= self.state.max_in_flight
        assert 0 <= self.state.slots_free <= self.state.max_in_flight

    @invariant()
    def nothing_is_settled_twice(self) -> None:
        assert all(times == 1 for times in self.fates.values())

    def teardown(self) -> None:
        self.close()
        self.state.delivered(self.settled)
        assert self.state.idle and self.state.slots_free == self.state.max_in_flight
        assert self.fates == {s.handle: 1 for s in self.all}
        assert [s.context for s in self.all] == [str(i) for i in range(1, len(self.all) + 1)]


TestProducerRun = ProducerRun.TestCase
TestProducerRun.settings = settings(stateful_step_count=30)
