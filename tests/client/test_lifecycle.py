"""Rx grammar and lifecycle: close completes streams, serialized callbacks, interrupts, asyncio.

On MemoryPulsar; closing while a callback runs, and close() ending every stream, also against
the session's Pulsar (``backend``).
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import Any

import pytest
import reactivex as rx
from reactivex import operators as ops

import rxstargate as rs
from rxstargate import _receiver, _receiver_feed
from rxstargate.testing import MemoryPulsar
from tests.conftest import Backend

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

WAIT = 10.0


class GrammarObserver:
    """Records every call and fails on overlapping calls or calls after the end."""

    def __init__(self, hold: float = 0.0) -> None:
        self.hold = hold
        self.items: list[Any] = []
        self.violations: list[str] = []
        self.ended = threading.Event()
        self.terminal: list[str] = []
        self._busy = threading.Lock()

    def _enter(self, what: str) -> None:
        if not self._busy.acquire(blocking=False):
            self.violations.append(f"concurrent {what}")
            self._busy.acquire()
        if self.ended.is_set():
            self.violations.append(f"{what} after the end")

    def on_next(self, value: Any) -> None:
        self._enter("on_next")
        try:
            time.sleep(self.hold)
            self.items.append(value)
        finally:
            self._busy.release()

    def on_error(self, error: Exception) -> None:
        self._enter("on_error")
        self.terminal.append(f"error {error!r}")
        self.ended.set()
        self._busy.release()

    def on_completed(self) -> None:
        self._enter("on_completed")
        self.terminal.append("completed")
        self.ended.set()
        self._busy.release()


def test_client_close_completes_open_streams_and_run_returns(
    backend: Backend, topic_name: str
) -> None:
    client = backend.client()
    topic = client.topic(topic_name)
    outcome: list[Any] = []
    started = threading.Event()

    def run_reader() -> None:
        stream = topic.observe(start="earliest").pipe(ops.do_action(lambda _: started.set()))
        try:
            outcome.append(stream.run())
        except Exception as exc:
            outcome.append(exc)

    producer = topic.producer()
    producer.send(b"one")
    runner = threading.Thread(target=run_reader, name="test-runner")
    runner.start()
    assert started.wait(WAIT)
    acks = GrammarObserver()
    producer.acks.subscribe(acks)
    consumer = GrammarObserver()
    topic.observe("sub").subscribe(consumer)
    client.close()
    runner.join(WAIT)
    assert not runner.is_alive()
    assert [m.payload for m in outcome] == [b"one"]  # run() returned the last item
    assert consumer.terminal == ["completed"]
    assert acks.terminal == ["completed"]
    assert client.streams == []


def test_client_errors_and_acks_are_never_emitted_concurrently(
    client: rs.Client, topic_name: str
) -> None:
    producer = client.topic(topic_name).producer(max_in_flight=200)
    watcher = GrammarObserver(hold=0.0005)
    producer.acks.subscribe(watcher)
    threads = [
        threading.Thread(
            target=lambda n=n: [producer.on_next(f"{n}-{i}".encode()) for i in range(100)],
            name="test-sender",
        )
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    producer.on_completed()
    assert watcher.violations == []
    assert len(watcher.items) == 400 and all(a.ok for a in watcher.items)
    assert watcher.terminal == ["completed"]


def test_on_next_after_on_completed_is_a_failed_ack(client: rs.Client, topic_name: str) -> None:
    producer = client.topic(topic_name).producer()
    acks: list[rs.ProducerAck] = []
    producer.acks.subscribe(acks.append)
    rx.from_iterable([b"a", b"b"]).subscribe(producer)
    producer.on_next(b"late")  # never raises into the upstream
    assert [a.ok for a in acks[:2]] == [True, True]
    with pytest.raises(rs.ClosedError):
        producer.send(b"later")


def test_send_from_the_acks_callback_works_and_a_full_window_fails_at_once(
    client: rs.Client, topic_name: str
) -> None:
    producer = client.topic(topic_name).producer(max_in_flight=2)
    replies: list[rs.ProducerAck] = []
    results: list[rs.ProducerAck] = []
    done = threading.Event()

    def on_ack(ack: rs.ProducerAck) -> None:
        results.append(ack)
        if len(results) == 1:
            replies.append(producer.send(b"reply"))  # waits on the receive thread, not on us
            producer.flush(timeout=WAIT)
            for _ in range(3):  # the window is 2: the third cannot wait for itself
                producer.on_next(b"burst")
        if len(results) >= 5:
            done.set()

    producer.acks.subscribe(on_ack)
    producer.send(b"first")
    assert done.wait(WAIT)
    producer.close()
    assert replies[0].ok
    outcomes = [a.result for a in results]
    assert rs.ClientResult.WOULD_DEADLOCK in outcomes


def test_a_stream_whose_run_is_interrupted_is_disposed(client: rs.Client, topic_name: str) -> None:
    topic = client.topic(topic_name)
    topic.producer().send(b"something")
    main = threading.get_ident()
    stream = topic.observe("sub", subscription_initial_position="Earliest")
    got_one = threading.Event()
    timer = threading.Thread(
        target=lambda: got_one.wait(WAIT) and signal.pthread_kill(main, signal.SIGINT),
        name="test-interrupter",
    )
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        stream.pipe(ops.do_action(lambda _: got_one.set())).run()
    timer.join(WAIT)
    assert [s.kind for s in client.streams] == ["producer"]  # the consumer is gone


def test_an_interrupt_while_a_subscription_starts_leaves_no_stream_behind(
    client: rs.Client, topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C may land while subscribe() still waits for its threads to start (the first
    message may already be delivered): run() never got the subscription to dispose."""
    start = _receiver._Session.start

    def start_then_interrupt(session: Any) -> None:
        start(session)
        raise KeyboardInterrupt  # as a SIGINT arriving in the main thread right then

    monkeypatch.setattr(_receiver._Session, "start", start_then_interrupt)
    topic = client.topic(topic_name)
    with pytest.raises(KeyboardInterrupt):
        topic.observe("sub", subscription_initial_position="Earliest").run()
    assert client.streams == []  # no consumer left acking messages nobody sees


def test_streams_lists_live_streams_and_each_can_be_stopped(
    client: rs.Client, topic_name: str
) -> None:
    topic = client.topic(topic_name)
    producer = topic.producer()
    ended = GrammarObserver()
    topic.observe("sub").subscribe(ended)
    kinds = sorted(s.kind for s in client.streams)
    assert kinds == ["consumer", "producer"]
    for stream in client.streams:
        stream.stop()
    assert client.streams == []
    assert ended.terminal == []  # stopping is disposing: no terminal event
    with pytest.raises(rs.ClosedError):
        producer.send(b"x")


def test_awaiting_a_stream_from_asyncio_returns(client: rs.Client, topic_name: str) -> None:
    topic = client.topic(topic_name)
    producer = topic.producer()
    for i in range(3):
        producer.send(str(i).encode())

    async def main() -> list[bytes]:
        stream = topic.observe(start="earliest").pipe(
            ops.take(3), ops.map(lambda m: m.payload), ops.to_list()
        )
        result: list[bytes] = await asyncio.wait_for(stream, WAIT)
        return result

    assert asyncio.run(main()) == [b"0", b"1", b"2"]

    async def first_by_future() -> bytes:
        stream = topic.observe(start="earliest").pipe(ops.first(), ops.map(lambda m: m.payload))
        payload: bytes = await asyncio.wait_for(stream.to_future(), WAIT)
        return payload

    assert asyncio.run(first_by_future()) == b"0"


def test_an_ack_after_the_stream_ended_raises(client: rs.Client, topic_name: str) -> None:
    topic = client.topic(topic_name)
    producer = topic.producer()
    for i in range(30):
        producer.on_next(str(i).encode())
    producer.flush()
    held = (
        topic.observe("sub", subscription_initial_position="Earliest")
        .pipe(ops.take(30), ops.to_list())
        .run()
    )
    failures = 0
    for message in held:  # the subscription was disposed by take(): no ack can reach the broker
        try:
            message.ack()
        except rs.AckError:
            failures += 1
    assert failures == 30


@pytest.mark.parametrize("how", ["dispose", "client.close"])
def test_closing_lets_the_callback_in_progress_finish_and_settle(
    backend: Backend, topic_name: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C right after a message was seen: the ack its callback is about to make still counts."""
    closing = threading.Event()
    wait_closed = _receiver._Session.wait_closed

    def close_begun(session: Any, deadline: float) -> None:
        closing.set()  # the consumer was told to stop: its close now waits for the callback
        wait_closed(session, deadline)

    monkeypatch.setattr(_receiver._Session, "wait_closed", close_begun)
    with backend.client() as client:
        topic = client.topic(topic_name)
        topic.producer().send(b"first")
        entered, acked = threading.Event(), threading.Event()

        def handle(message: rs.Message[Any]) -> None:
            entered.set()
            closing.wait(WAIT)  # the close begins here, before the ack
            message.ack()
            acked.set()

        subscription = topic.observe("held", subscription_initial_position="Earliest").subscribe(
            handle
        )
        assert entered.wait(WAIT)
        if how == "dispose":
            subscription.dispose()
        else:
            client.close()
        assert acked.is_set()  # the ack did not raise: the socket outlived the callback
    with backend.client() as client:
        topic = client.topic(topic_name)
        topic.producer().send(b"sentinel")
        again = (
            topic.observe("held")
            .pipe(ops.take(1), ops.map(lambda m: m.payload), ops.to_list())
            .run()
        )
        assert again == [b"sentinel"]


def test_close_waits_for_streams_that_ended_by_themselves(
    memory: MemoryPulsar, topic_name: str
) -> None:
    """take() ends a subscription from its own delivery thread; close() still waits for it."""
    with memory.client() as client:
        producer = client.topic(topic_name).producer()
        for i in range(5):
            producer.send(str(i).encode())
    before = {t for t in threading.enumerate() if t.name.startswith("rxstargate")}
    for attempt in range(3):
        with memory.client() as client:
            got = (
                client.topic(topic_name)
                .observe(f"sub-{attempt}", subscription_initial_position="Earliest")
                .pipe(ops.take(2), ops.do(rs.acknowledger()), ops.to_list())
                .run()
            )
            assert len(got) == 2
        left = {t for t in threading.enumerate() if t.name.startswith("rxstargate")} - before
        assert sorted(t.name for t in left) == []  # right after close(), not eventually


def test_a_new_consumer_waits_for_this_clients_consumer_leaving_its_subscription(
    memory: MemoryPulsar, topic_name: str
) -> None:
    """An Exclusive subscription this client is still closing is awaited, not a 409."""
    refused = threading.Event()

    def connect(url: str, config: Any, name: str) -> Any:
        try:
            return memory.connect(url, config, name)
        except rs.ConflictError:
            refused.set()
            raise

    memory.publish(topic_name, b"a")
    memory.publish(topic_name, b"b")
    with rs.Client(memory.url, connect=connect) as client:
        topic = client.topic(topic_name)
        first = topic.observe("only", subscription_initial_position="Earliest").subscribe()
        got: list[bytes] = []
        errors: list[Exception] = []
        done = threading.Event()
        topic.observe("only").pipe(ops.do(rs.acknowledger()), ops.take(2)).subscribe(
            lambda m: got.append(m.payload), lambda e: (errors.append(e), done.set()), done.set
        )
        assert refused.wait(WAIT)  # the newcomer met the subscription still held
        first.dispose()
        assert done.wait(WAIT)
        assert errors == []
        assert got == [b"a", b"b"]


def test_a_consumer_refused_while_this_clients_own_consumer_stays_ends_with_the_409(
    memory: MemoryPulsar, topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait for this client's own consumer to leave is bounded: one that stays is a 409."""
    monkeypatch.setattr(_receiver_feed, "_OWN_CLOSE_SETTLE", 0.05)  # a second by default
    with memory.client(close_timeout=0.05) as client:
        topic = client.topic(topic_name)
        held = topic.observe("only").subscribe()
        memory.wait_until(lambda: len(memory.sockets("consumer")) == 1)
        errors: list[Exception] = []
        failed = threading.Event()
        topic.observe("only").subscribe(on_error=lambda e: (errors.append(e), failed.set()))
        assert failed.wait(WAIT)
        held.dispose()
    assert len(errors) == 1
    assert isinstance(errors[0], rs.ConflictError) and errors[0].status_code == 409


def test_an_exclusive_subscription_can_be_consumed_again_right_after_take_ends(
    backend: Backend, topic_name: str
) -> None:
    """A notebook cell run twice: take(n).run(), then observe the same subscription at once."""
    with backend.client() as client:
        topic = client.topic(topic_name)
        producer = topic.producer()
        for round_ in range(5):
            producer.send(f"{round_}".encode())
            got = (
                topic.observe("again", subscription_initial_position="Earliest")
                .pipe(ops.take(1), ops.do(rs.acknowledger()), ops.map(lambda m: m.payload))
                .run()
            )
            assert got == f"{round_}".encode()
