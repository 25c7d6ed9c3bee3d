"""Operators under misuse: awaitables from plain handlers, raising observers, timed-out keys,
and arguments of the wrong kind."""

from __future__ import annotations

import asyncio
import gc
import math
import threading
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import reactivex as rx
from reactivex import abc
from reactivex import operators as ops
from reactivex.disposable import Disposable
from reactivex.testing import TestScheduler

import rxstargate as rs
from rxstargate import operators as rso
from rxstargate._timers import TimerScheduler
from rxstargate.operators import Batch, Processed, Retry, batch, process
from tests.faults import unacked_messages

from .conftest import MessageFactory, RecordingSettler

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

WAIT = 10.0


class SaturatedSettler(RecordingSettler):
    """A settler whose stream holds all its credit."""

    saturated = True


def run_to_end(stream: rx.Observable[Any]) -> tuple[list[Any], list[Exception]]:
    items: list[Any] = []
    errors: list[Exception] = []
    done = threading.Event()
    stream.subscribe(items.append, lambda e: (errors.append(e), done.set()), done.set)
    assert done.wait(WAIT)
    return items, errors


# -- 1. a plain handler that returns an awaitable ------------------------------------------


async def _save(message: rs.Message[Any], into: list[bytes]) -> bytes:
    await asyncio.sleep(0)
    into.append(message.payload)
    return message.payload


class _AsyncCallable:
    def __init__(self) -> None:
        self.done: list[bytes] = []

    async def __call__(self, message: rs.Message[Any]) -> bytes:
        return await _save(message, self.done)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_an_object_with_an_async_call_is_awaited(
    make_message: MessageFactory, settler: RecordingSettler, concurrency: int
) -> None:
    handler = _AsyncCallable()
    messages = [make_message(str(i).encode()) for i in range(6)]
    items, errors = run_to_end(
        rx.from_iterable(messages).pipe(process(handler, concurrency=concurrency))
    )
    assert errors == []
    assert sorted(handler.done) == sorted(m.payload for m in messages)
    assert sorted(p.result for p in items) == sorted(m.payload for m in messages)


@pytest.mark.parametrize(
    ("concurrency", "retry"), [(1, None), (3, None), (1, Retry(attempts=3, initial=0.0))]
)
def test_a_plain_handler_returning_a_coroutine_fails_its_message_instead_of_acking_it(
    make_message: MessageFactory,
    settler: RecordingSettler,
    concurrency: int,
    retry: Retry | None,
) -> None:
    done: list[bytes] = []
    messages = [make_message(str(i).encode()) for i in range(5)]
    stats = rso.ProcessingStats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items, errors = run_to_end(
            rx.from_iterable(messages).pipe(
                process(
                    lambda m: _save(m, done),
                    concurrency=concurrency,
                    retry=retry,
                    stats=stats,
                ),
                ops.do_action(rs.acknowledger().on_next),
            )
        )
        gc.collect()
    assert items == [] and errors == [] and done == []
    assert settler.acked == []
    assert sorted(settler.nacked) == sorted(m.payload for m in messages)
    assert stats.failed == 5 and stats.retried == 0  # retrying cannot help
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_a_plain_handler_returning_a_coroutine_ends_an_error_stream_with_a_type_error(
    make_message: MessageFactory,
) -> None:
    _, errors = run_to_end(
        rx.from_iterable([make_message(b"a")]).pipe(
            process(lambda m: _save(m, []), on_failure="error")
        )
    )
    assert len(errors) == 1 and isinstance(errors[0], TypeError)
    assert "async" in str(errors[0])


# -- 2. an observer that raises ------------------------------------------------------------


async def _echo(message: rs.Message[Any]) -> bytes:
    await asyncio.sleep(0)
    return message.payload


@pytest.mark.parametrize(
    "stage",
    [
        lambda: process(lambda m: m.payload, concurrency=4),
        lambda: process(lambda m: m.payload, concurrency=4, key_ordered=True),
        lambda: process(lambda m: m.payload, retry=Retry(attempts=2)),
        lambda: process(_echo),
        lambda: process(_echo, concurrency=4),
        lambda: batch(2, 30.0, lambda items: len(items)),
        lambda: process(lambda m: m.payload),
    ],
    ids=["threads", "key-ordered", "inline-retry", "coroutine", "coroutines", "batch", "direct"],
)
def test_an_exception_raised_by_the_observer_reaches_its_on_error_once(
    make_message: MessageFactory, stage: Callable[[], Any]
) -> None:
    messages = [make_message(str(i).encode(), key=f"k{i % 2}") for i in range(40)]
    seen: list[Any] = []
    errors: list[Exception] = []
    ended = threading.Event()
    boom = RuntimeError("my callback failed")

    def on_next(item: Any) -> None:
        seen.append(item)
        if len(seen) == 3:
            raise boom

    rx.from_iterable(messages).pipe(stage()).subscribe(
        on_next, lambda e: (errors.append(e), ended.set()), ended.set
    )
    assert ended.wait(WAIT)
    assert errors == [boom]
    assert len(seen) == 3  # nothing after the exception


def test_serial_observer_ends_on_a_raising_observer_and_logs_a_raising_on_error() -> None:
    from rxstargate._serial import SerialObserver

    calls: list[Any] = []

    class Bad(abc.ObserverBase[int]):
        def on_next(self, value: int) -> None:
            calls.append(value)
            raise ValueError(value)

        def on_error(self, error: Exception) -> None:
            calls.append(error)
            raise error  # the default on_error of subscribe() does this

        def on_completed(self) -> None:
            calls.append("done")

    serial: SerialObserver[int] = SerialObserver(Bad())
    serial.on_next(1)  # never raises into the emitting thread
    serial.on_next(2)
    serial.on_completed()
    assert calls[0] == 1 and isinstance(calls[1], ValueError) and len(calls) == 2
    assert serial.ended


class _Picky(abc.ObserverBase[int]):
    """Records what it is given, and the threads it is called on; raises at ``raise_at``."""

    def __init__(self, raise_at: int) -> None:
        self.raise_at = raise_at
        self.seen: list[Any] = []
        self.threads: set[str] = set()
        self.ended = threading.Event()

    def on_next(self, value: int) -> None:
        self.threads.add(threading.current_thread().name)
        self.seen.append(value)
        if value == self.raise_at:
            raise ValueError(value)

    def on_error(self, error: Exception) -> None:
        self.seen.append(error)
        self.ended.set()

    def on_completed(self) -> None:
        self.seen.append("done")


def test_a_hand_off_delivers_bursts_in_order_on_its_thread_and_ends_on_a_raising_observer() -> None:
    from rxstargate._serial import HandOff

    picky = _Picky(raise_at=2500)
    seen, threads, ended = picky.seen, picky.threads, picky.ended
    hand_off: HandOff[int] = HandOff(picky, "test-hand-off")
    for burst in range(4):  # bursts from two threads, one after the other
        values = range(burst * 1000, (burst + 1) * 1000)
        if burst % 2:
            thread = threading.Thread(target=lambda v=values: [hand_off.on_next(x) for x in v])
            thread.start()
            thread.join(WAIT)
        else:
            for value in values:
                hand_off.on_next(value)
    hand_off.on_completed()
    assert ended.wait(WAIT)
    assert seen[:-1] == list(range(2501)) and isinstance(seen[-1], ValueError)
    assert threads == {"test-hand-off"} and hand_off.ended


def test_a_hand_off_runs_calls_in_order_with_its_items_and_none_after_the_end() -> None:
    from rxstargate._serial import HandOff

    seen: list[Any] = []
    done = threading.Event()
    observer = rx.Observer[Any](seen.append, seen.append, lambda: (seen.append("done"), done.set()))
    hand_off: HandOff[Any] = HandOff(observer, "test-hand-off")
    hand_off.start()
    hand_off.on_next(1)
    hand_off.call(lambda x: seen.append(("call", x, threading.current_thread().name)), 2)
    hand_off.on_next(3)
    hand_off.on_completed()
    hand_off.call(seen.append, "after the end")
    assert done.wait(WAIT)
    assert seen == [1, ("call", 2, "test-hand-off"), 3, "done"]
    assert hand_off.closed and hand_off.ended


def test_a_call_that_raises_on_a_hand_off_ends_its_stream_with_on_error_once() -> None:
    from rxstargate._serial import HandOff

    seen: list[Any] = []
    ended = threading.Event()
    boom = RuntimeError("the call failed")

    def fail() -> None:
        raise boom

    def on_error(error: Exception) -> None:
        seen.append(error)
        ended.set()

    hand_off: HandOff[Any] = HandOff(rx.Observer[Any](seen.append, on_error), "test-hand-off")
    hand_off.on_next(1)
    hand_off.call(fail)
    hand_off.on_next(2)
    hand_off.call(seen.append, "a call after the error")
    assert ended.wait(WAIT)
    hand_off.on_next(3)
    hand_off.stop()
    assert seen == [1, boom]


def test_a_hand_off_delivers_bursts_handed_over_whole_in_order_and_nothing_after_a_raise() -> None:
    from rxstargate._serial import HandOff

    picky = _Picky(raise_at=5)
    seen, threads, ended = picky.seen, picky.threads, picky.ended
    hand_off: HandOff[int] = HandOff(picky, "test-hand-off")
    hand_off.on_next_all([1, 2, 3])
    hand_off.on_next_all([])
    hand_off.on_next_all([4, 5, 6])  # 6 comes after the raise: never delivered
    hand_off.on_next(7)
    assert ended.wait(WAIT)
    hand_off.on_next_all([8])
    hand_off.on_completed()
    assert seen[:-1] == [1, 2, 3, 4, 5] and isinstance(seen[-1], ValueError)
    assert threads == {"test-hand-off"} and hand_off.ended


# -- acknowledger and batch with processed items ------------------------------------------


def test_the_acknowledger_settles_a_batch_of_processed_items(
    make_message: MessageFactory, settler: RecordingSettler
) -> None:
    a, b, c = (make_message(p) for p in (b"a", b"b", b"c"))
    sink = rs.acknowledger()
    sink.on_next(Batch((Processed(a, 1), Processed(b, 2, settle=False), c), 3))
    assert sorted(settler.acked) == [b"a", b"b", b"c"]  # as Batch.ack() does
    assert sink.acked == 3 and sink.failed == 0


def test_batch_cuts_processed_items_once_the_stream_holds_all_its_credit() -> None:
    saturated = SaturatedSettler()
    messages = [
        rs.Message(
            topic=rs.TopicName.parse("t"),
            payload=str(i).encode(),
            message_id=rs.MessageId.from_parts(1, i),
            _settler=saturated,
        )
        for i in range(3)
    ]
    never = TestScheduler()  # max_wait never passes: only the credit cut can emit
    emitted: list[Batch[Any]] = []
    subject: rx.subject.Subject[rs.Message[Any]] = rx.subject.Subject()
    subject.pipe(process(lambda m: m.payload), batch(50, 30.0, scheduler=never)).subscribe(
        emitted.append
    )
    for message in messages:
        subject.on_next(message)
    assert [len(b.messages) for b in emitted] == [1, 1, 1]
    assert all(isinstance(item, Processed) for b in emitted for item in b.messages)


# -- 3. key order after a threaded timeout -----------------------------------------------


@pytest.mark.parametrize("retry", [None, Retry(attempts=2, initial=0.0, jitter=0.0)])
def test_a_timed_out_call_keeps_its_key_busy_until_it_returns(
    make_message: MessageFactory, settler: RecordingSettler, retry: Retry | None
) -> None:
    scheduler = TestScheduler()
    release = threading.Event()
    first_started = threading.Event()
    second_started = threading.Event()
    lock = threading.Lock()
    running: list[bytes] = []
    overlaps: list[bytes] = []
    calls: list[bytes] = []

    def handler(message: rs.Message[Any]) -> bytes:
        with lock:
            if running:
                overlaps.append(message.payload)
            running.append(message.payload)
            calls.append(message.payload)
            first = calls == [b"0"]
        if first:
            first_started.set()
            release.wait(WAIT)
        else:
            second_started.set()
        with lock:
            running.remove(message.payload)
        return message.payload

    messages = [make_message(str(i).encode(), key="k") for i in range(3)]
    done = threading.Event()
    items: list[Any] = []
    rx.from_iterable(messages).pipe(
        process(
            handler,
            concurrency=4,
            key_ordered=True,
            timeout=5.0,
            retry=retry,
            scheduler=scheduler,
        )
    ).subscribe(items.append, on_completed=done.set)
    assert first_started.wait(WAIT)
    scheduler.advance_by(6.0)  # the first call times out while it still runs
    # A window in which nothing may start on the key: the timed-out call still runs.
    started_early = second_started.wait(0.3)
    release.set()  # a retry of message 0 comes only once the timed-out call returned
    assert done.wait(WAIT)
    assert not started_early and overlaps == []
    assert calls[0] == b"0" and calls[1] == (b"0" if retry is not None else b"1")


# -- 5. arguments ---------------------------------------------------------------------------


def _bad_calls() -> list[tuple[str, Callable[[], Any]]]:
    nan, inf = math.nan, math.inf
    return [
        ("timeout", lambda: process(print, timeout="5")),  # type: ignore[arg-type]
        ("timeout", lambda: process(print, timeout=nan)),
        ("timeout", lambda: process(print, timeout=inf)),
        ("timeout", lambda: process(print, timeout=-1)),
        ("handler", lambda: process(42)),  # type: ignore[arg-type]
        ("key_ordered", lambda: process(print, key_ordered="no")),  # type: ignore[arg-type]
        ("stats", lambda: process(print, stats={})),  # type: ignore[arg-type]
        ("scheduler", lambda: process(print, scheduler=1)),  # type: ignore[arg-type]
        ("max_wait", lambda: batch(5, "1")),  # type: ignore[arg-type]
        ("max_wait", lambda: batch(5, nan)),
        ("max_wait", lambda: batch(5, inf)),
        ("handler", lambda: batch(10, 0.5, "insert_rows")),  # type: ignore[arg-type]
        ("scheduler", lambda: batch(10, 0.5, scheduler="x")),  # type: ignore[arg-type]
        ("initial", lambda: Retry(initial=nan)),
        ("initial", lambda: Retry(initial="1")),  # type: ignore[arg-type]
        ("cap", lambda: Retry(cap=inf)),
        ("factor", lambda: Retry(factor=nan)),
        ("jitter", lambda: Retry(jitter=nan)),
        ("on", lambda: Retry(on=(int,))),  # type: ignore[arg-type]
        ("on", lambda: Retry(on="ValueError")),  # type: ignore[arg-type]
        ("predicate", lambda: rso.filter(3)),  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize(("name", "call"), _bad_calls())
def test_a_bad_argument_is_refused_naming_itself(name: str, call: Callable[[], Any]) -> None:
    with pytest.raises(rs.ConfigurationError, match=name):
        call()


def test_durations_take_timedeltas(make_message: MessageFactory) -> None:
    retry = Retry(initial=timedelta(milliseconds=100), cap=timedelta(seconds=1), jitter=0)
    assert [retry.delay(n) for n in (1, 2, 5)] == [0.1, 0.2, 1.0]
    assert Retry(on=ValueError).on == (ValueError,)
    items, errors = run_to_end(
        rx.from_iterable([make_message(b"a"), make_message(b"b")]).pipe(
            process(lambda m: m.payload, timeout=timedelta(seconds=5), retry=retry),
            batch(10, timedelta(seconds=5)),
        )
    )
    assert errors == [] and [len(b.messages) for b in items] == [2]


def test_a_huge_retry_count_never_overflows_the_delay() -> None:
    assert Retry(attempts=5000, jitter=0).delay(4000) == 10.0


# -- 6. a pending retry delay never outlives the stream ------------------------------------


def _pending_timers() -> int:
    """Timeouts, retry delays and batch windows scheduled by the operators and not yet done."""
    return TimerScheduler.shared().pending


def _wait_until(predicate: Callable[[], bool]) -> None:
    done = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError("condition not reached in time")


@pytest.mark.parametrize("concurrency", [1, 3])
def test_disposing_process_cancels_a_pending_retry_and_leaves_its_message(
    make_message: MessageFactory, settler: RecordingSettler, concurrency: int
) -> None:
    before = _pending_timers()
    stats = rso.ProcessingStats()
    source: rx.subject.Subject[rs.Message[Any]] = rx.subject.Subject()

    def handle(message: rs.Message[Any]) -> None:
        raise RuntimeError("later")

    retry = Retry(attempts=3, initial=30, cap=30, jitter=0.0)
    subscription = source.pipe(
        process(handle, concurrency=concurrency, retry=retry, stats=stats)
    ).subscribe(lambda item: None)
    source.on_next(make_message(b"a"))
    _wait_until(lambda: _pending_timers() > before)  # the retry waits on a timer
    subscription.dispose()
    _wait_until(lambda: _pending_timers() == before)  # cancelled, not left for 30 s
    assert settler.acked == [] and settler.nacked == []  # left for redelivery
    assert stats.in_flight == 0


@pytest.mark.parametrize("key_ordered", [False, True])
def test_stop_does_not_wait_for_a_retry_delay(
    client: rs.Client, topic_name: str, caplog: pytest.LogCaptureFixture, key_ordered: bool
) -> None:
    before = _pending_timers()
    producer = client.topic(topic_name).producer()
    for i in range(4):
        producer.send(str(i).encode(), key="k" if i < 2 else str(i))

    def handle(message: rs.Message[Any]) -> None:
        if message.payload == b"0":
            raise RuntimeError("retry me later")

    pipeline = client.topic(topic_name).consume(
        "work",
        handle,
        concurrency=2,
        key_ordered=key_ordered,
        retry=Retry(attempts=3, initial=30, cap=30, jitter=0.0),
        start="earliest",
    )
    pipeline.start()
    settled = 2 if key_ordered else 3  # with key order, "1" waits behind "0"
    _wait_until(lambda: pipeline.stats.retried == 1 and pipeline.stats.processed == settled)
    with caplog.at_level("WARNING", logger="rxstargate.pipeline"):
        pipeline.stop(timeout=5)
    assert "did not finish" not in caplog.text  # nothing was waited for
    assert pipeline.state is rs.PipelineState.STOPPED
    assert pipeline.stats.in_flight == 0
    _wait_until(lambda: _pending_timers() == before)
    rest = {m.payload for m in unacked_messages(client, topic_name, "work", "Shared")}
    assert rest == ({b"0", b"1"} if key_ordered else {b"0"})


@pytest.mark.parametrize("options", [{}, {"retry": Retry(attempts=2)}], ids=["direct", "retry"])
def test_an_observer_that_raises_never_raises_into_the_source(
    make_message: MessageFactory, options: dict[str, Any]
) -> None:
    """The stream's own thread pushes straight into process(): the error must stop there."""
    pushed: list[abc.ObserverBase[Any]] = []

    def subscribe(observer: abc.ObserverBase[Any], scheduler: Any = None) -> Any:
        pushed.append(observer)
        return Disposable()

    errors: list[Exception] = []
    boom = ValueError("user on_next")

    class Raising(abc.ObserverBase[Any]):
        def on_next(self, value: Any) -> None:
            raise boom

        def on_error(self, error: Exception) -> None:
            errors.append(error)

        def on_completed(self) -> None:
            pass

    rx.create(subscribe).pipe(process(lambda m: 1, **options)).subscribe(Raising())
    pushed[0].on_next(make_message(b"x"))  # must not raise here
    assert errors == [boom]
