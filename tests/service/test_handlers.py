"""The wrapper around an App's handlers, run by ``rso.process`` without a broker: it times
calls, counts redeliveries once per delivery, and publishes results before the input is acked.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest
import reactivex as rx
from reactivex import operators as ops

import rxstargate as rs
from rxstargate import operators as rso
from rxstargate.service._handlers import HandlerCounters, instrument

pytestmark = pytest.mark.usefixtures("prompt_timer_thread", "no_leaked_threads")

_ids = itertools.count()


class Settled:
    """Records how messages were settled."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: list[bytes] = []
        self.nacked: list[bytes] = []

    def ack(self, message: rs.Message[Any], on_lost: Any = None) -> None:
        with self.lock:
            self.acked.append(message.payload)

    def nack(self, message: rs.Message[Any], on_lost: Any = None) -> None:
        with self.lock:
            self.nacked.append(message.payload)


class Outputs:
    """A producer's send and asend, recorded; ``refuse`` makes every send fail."""

    def __init__(self, refuse: bool = False) -> None:
        self.sent: list[tuple[Any, str | None, dict[str, str] | None]] = []
        self.refuse = refuse

    def send(self, payload: Any, *, key: str | None = None, properties: Any = None) -> None:
        if self.refuse:
            raise rs.SendError("refused", "send-error:8")
        self.sent.append((payload, key, properties))

    async def asend(self, payload: Any, *, key: str | None = None, properties: Any = None) -> None:
        self.send(payload, key=key, properties=properties)


def message(settled: Settled, payload: bytes, redelivery_count: int = 0) -> rs.Message[Any]:
    return rs.Message(
        topic=rs.TopicName.parse("orders"),
        payload=payload,
        message_id=rs.MessageId.from_parts(1, next(_ids)),
        key="alice",
        properties={"region": "eu"},
        redelivery_count=redelivery_count,
        _settler=settled,
    )


def run(handler: Any, messages: list[rs.Message[Any]], **options: Any) -> None:
    """``process`` the messages with ``handler`` and ack what comes out."""
    done = threading.Event()
    sink = rs.acknowledger(on_completed=done.set, on_error=lambda e: done.set())
    rx.from_iterable(messages).pipe(rso.process(handler, **options)).subscribe(sink)
    assert done.wait(10)


def failing_twice() -> Callable[[rs.Message[Any]], bytes]:
    calls = itertools.count(1)

    def handler(message: rs.Message[Any]) -> bytes:
        if next(calls) <= 2:
            raise RuntimeError("not yet")
        return message.payload.upper()

    return handler


def test_a_retried_call_is_timed_each_time_but_its_redelivery_counted_once() -> None:
    settled, counters, outputs = Settled(), HandlerCounters(), Outputs()
    handler = instrument(failing_twice(), counters, outputs)
    run(handler, [message(settled, b"a", redelivery_count=1)], retry=rso.Retry(3, initial=0))
    assert counters.redelivered == 1
    assert counters.durations.snapshot().count == 3
    assert outputs.sent == [(b"A", "alice", {"region": "eu"})]
    assert settled.acked == [b"a"]


def test_results_are_published_with_the_input_key_and_properties_unless_nothing_to_send() -> None:
    settled, outputs = Settled(), Outputs()
    results = {
        b"bytes": b"out",
        b"none": None,
        b"nack": rso.Nack(),
        b"own": rs.OutgoingMessage(b"x", key="bob"),
    }
    handler = instrument(lambda m: results[m.payload], HandlerCounters(), outputs)
    run(handler, [message(settled, payload) for payload in results])
    assert outputs.sent == [
        (b"out", "alice", {"region": "eu"}),
        (rs.OutgoingMessage(b"x", key="bob"), None, None),
    ]
    assert sorted(settled.acked) == [b"bytes", b"none", b"own"]
    assert settled.nacked == [b"nack"]


def test_an_output_that_cannot_be_stored_fails_its_input_instead_of_acking_it() -> None:
    settled, counters = Settled(), HandlerCounters()
    handler = instrument(lambda m: m.payload, counters, Outputs(refuse=True))
    run(handler, [message(settled, b"a")])
    assert settled.acked == []
    assert settled.nacked == [b"a"]
    assert counters.last_finished is None  # handled, but not in full: its output is missing


class Numbered(rso.MessageHandler[int]):
    def init(self) -> int:
        return 0

    def handle(self, message: rs.Message[Any], state: int) -> tuple[Any, int]:
        return message.payload + str(state).encode(), state + 1


class AsyncNumbered(rso.MessageHandler[int]):
    def init(self) -> int:
        return 0

    async def handle(self, message: rs.Message[Any], state: int) -> tuple[Any, int]:  # type: ignore[override]
        return message.payload + str(state).encode(), state + 1


async def async_upper(message: rs.Message[Any]) -> bytes:
    return message.payload.upper()


@pytest.mark.parametrize(
    ("handler", "expected"),
    [(Numbered(), [b"a0", b"b1"]), (AsyncNumbered(), [b"a0", b"b1"]), (async_upper, [b"A", b"B"])],
)
def test_every_shape_of_handler_keeps_its_shape_and_is_published(
    handler: Any, expected: list[bytes]
) -> None:
    settled, counters, outputs = Settled(), HandlerCounters(), Outputs()
    wrapped = instrument(handler, counters, outputs)
    assert isinstance(wrapped, rso.MessageHandler) == isinstance(handler, rso.MessageHandler)
    run(wrapped, [message(settled, b"a"), message(settled, b"b")])
    assert [payload for payload, _, _ in outputs.sent] == expected
    assert counters.durations.snapshot().count == 2
    assert counters.last_finished is not None and counters.last_finished.payload == b"b"
    assert settled.acked == [b"a", b"b"]


def test_without_a_producer_the_result_is_only_the_handlers() -> None:
    settled, counters = Settled(), HandlerCounters()
    results: list[Any] = []
    handler = instrument(lambda m: m.payload[::-1], counters, None)
    rx.from_iterable([message(settled, b"ab")]).pipe(
        rso.process(handler), ops.map(lambda item: item.result)
    ).subscribe(results.append)
    assert results == [b"ba"]
