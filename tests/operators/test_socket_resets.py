"""``process`` across a consumer's reconnects: what the dropped socket delivered is not worked on.

When a consumer's socket drops, the broker redelivers every message it left unsettled, and the
settles of those messages can no longer reach it. Messages of the old socket still waiting in
``process`` are dropped before their handler (as Pulsar's own clients clear their receive
queue on reconnect), the calls in progress keep their slots but their outcomes are ignored,
and the stage's in-flight count stays within the consumer's ``max_in_flight``.

On MemoryPulsar; the reset across a window also against local Pulsar, through a proxy that
resets its connections.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from reactivex import operators as ops

import rxstargate as rs
from rxstargate import operators as rso
from rxstargate.testing import MemoryPulsar
from tests.conftest import Backend
from tests.faults import Faults

WINDOW = 10


def _publish(client: rs.Client, topic: str, count: int, keys: int | None = None) -> None:
    with client.topic(topic).producer() as producer:
        for i in range(count):
            producer.send(str(i).encode(), key=None if keys is None else f"k{i % keys}")


def _wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


class _Gate:
    """A handler whose calls wait until the test opens it, counting calls per payload."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.calls: Counter[bytes] = Counter()
        self.lock = threading.Lock()

    def __call__(self, message: rs.Message[Any]) -> bytes:
        with self.lock:
            self.calls[message.payload] += 1
        if not self.opened.wait(10.0):
            raise TimeoutError("the test never opened the gate")
        return message.payload

    @property
    def started(self) -> int:
        with self.lock:
            return sum(self.calls.values())


def _run_across_a_reset(
    backend: Backend, faults: Faults, topic: str, key_ordered: bool
) -> tuple[_Gate, int]:
    """Two calls hold their slots, eight wait; the connection is reset and the consumer
    reconnects; then the calls go on. Returns the handler and the in-flight count once the
    new socket's window reached the stage."""
    stats = rso.ProcessingStats()
    seen: list[rs.Message[Any]] = []
    handler = _Gate()
    with faults.client(reconnect=rs.Backoff(initial=0.01, jitter=0.0)) as client:
        subscription = (
            client.topic(topic)
            .observe("work", start="earliest", max_in_flight=WINDOW)
            .pipe(
                ops.do_action(seen.append),
                rso.process(handler, concurrency=2, key_ordered=key_ordered, stats=stats),
            )
            .subscribe(rs.acknowledger())
        )
        try:
            _wait_until(lambda: len(seen) == WINDOW and handler.started == 2)
            assert faults.reset() >= 1
            # The new socket's window: the ten redelivered, taken in while two calls still
            # hold their slots.
            _wait_until(lambda: len(seen) == 2 * WINDOW)
            in_flight = stats.in_flight
            handler.opened.set()
            _wait_until(lambda: stats.processed >= 2 * WINDOW and stats.in_flight == 0)
        finally:
            handler.opened.set()
            subscription.dispose()
    assert backend.backlog(topic, "work") == 0
    return handler, in_flight


def test_messages_of_a_dropped_socket_waiting_for_a_slot_never_reach_the_handler(
    backend: Backend, faults: Faults, topic_name: str
) -> None:
    _publish(backend.client(), topic_name, 20)
    handler, _ = _run_across_a_reset(backend, faults, topic_name, key_ordered=False)
    # Only the two calls in progress at the reset ran twice: the eight messages that waited
    # were dropped before their handler (the broker redelivered them).
    assert sorted(handler.calls.values()).count(2) == 2
    assert set(handler.calls) == {str(i).encode() for i in range(20)}
    assert handler.started == 22


def test_the_in_flight_count_stays_within_the_window_across_a_reconnect(
    backend: Backend, faults: Faults, topic_name: str
) -> None:
    _publish(backend.client(), topic_name, 20)
    _, in_flight = _run_across_a_reset(backend, faults, topic_name, key_ordered=False)
    assert in_flight <= WINDOW


def test_with_key_order_a_dropped_message_lets_the_next_of_its_key_go_first(
    backend: Backend, faults: Faults, topic_name: str
) -> None:
    _publish(backend.client(), topic_name, 20, keys=3)
    handler, in_flight = _run_across_a_reset(backend, faults, topic_name, key_ordered=True)
    assert in_flight <= WINDOW
    assert set(handler.calls) == {str(i).encode() for i in range(20)}
    assert handler.started == 22


def test_a_pipeline_makes_progress_when_its_socket_is_cut_again_and_again(
    memory: MemoryPulsar,
) -> None:
    """Regression: each reconnect added a window of messages to those of the dropped socket
    waiting in the stage, and the handler worked only on those: no progress, no bound."""
    total, concurrency = 400, 8
    for i in range(total):
        memory.publish("orders", str(i).encode())
    calls: Counter[bytes] = Counter()
    lock = threading.Lock()
    cutting = threading.Lock()  # calls wait while the network is cut, until it reconnected
    peak, cuts = 0, 0

    def handler(message: rs.Message[Any]) -> None:
        nonlocal peak, cuts
        with cutting, lock:
            calls[message.payload] += 1
            peak = max(peak, pipeline.stats.in_flight)
            cut = sum(calls.values()) % 40 == 0
            cuts += cut
        if cut:
            with cutting:
                memory.cut()
                memory.wait_until(lambda: memory.sockets("consumer"))

    client = memory.client(reconnect=rs.Backoff(initial=0.01, jitter=0.0))
    pipeline = client.topic("orders").consume(
        "work", handler, concurrency=concurrency, start="earliest", max_in_flight=100
    )
    with pipeline:
        memory.wait_until(lambda: memory.backlog("orders", "work") == 0, timeout=15.0)
    client.close()
    assert set(calls) == {str(i).encode() for i in range(total)}
    assert peak <= 100
    # A cut costs each slot at most its call in progress and one that started before the
    # consumer saw the drop, never the messages that waited.
    assert sum(calls.values()) <= total + cuts * 2 * concurrency
