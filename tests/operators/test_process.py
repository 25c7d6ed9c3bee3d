"""process(): concurrency bound, per-key order, outcomes, retries in virtual time, failures."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
import reactivex as rx
from reactivex import operators as ops
from reactivex.subject import Subject
from reactivex.testing import TestScheduler

import rxstargate as rs
from rxstargate.operators import (
    Leave,
    MessageHandler,
    Nack,
    Processed,
    ProcessingStats,
    Retry,
    process,
)

from .conftest import MessageFactory, RecordingSettler

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

WAIT = 10.0


def run_all(source: rx.Observable[Any], *stages: Any) -> list[Any]:
    result: list[Any] = source.pipe(*stages, ops.to_list()).run()
    return result


def test_the_concurrency_bound_is_reached_and_never_exceeded(make_message: MessageFactory) -> None:
    running = 0
    peak = 0
    lock = threading.Lock()
    full = threading.Barrier(8)  # each call waits until 8 run at once: the bound is reached

    def work(message: rs.Message[Any]) -> bytes:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        full.wait(WAIT)
        with lock:
            running -= 1
        return message.payload

    messages = [make_message(str(i).encode()) for i in range(64)]
    out = run_all(rx.from_iterable(messages), process(work, concurrency=8))
    assert peak == 8
    assert sorted(p.result for p in out) == sorted(m.payload for m in messages)


def test_key_order_holds_under_concurrency_with_random_delays(
    make_message: MessageFactory,
) -> None:
    rng = random.Random(7)
    keys = [f"k{i}" for i in range(16)] + [None]
    messages = [make_message(f"{i}".encode(), key=rng.choice(keys)) for i in range(400)]
    handled: dict[str | None, list[int]] = {}
    lock = threading.Lock()
    running = 0
    peak = 0

    def work(message: rs.Message[Any]) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(rng.random() * 0.003)
        with lock:
            running -= 1
            handled.setdefault(message.key, []).append(int(message.payload))

    out = run_all(rx.from_iterable(messages), process(work, concurrency=8, key_ordered=True))
    for key, seen in handled.items():
        assert seen == sorted(seen), f"key {key} out of order"
    emitted: dict[str | None, list[int]] = {}
    for item in out:
        emitted.setdefault(item.message.key, []).append(int(item.message.payload))
    assert all(v == sorted(v) for v in emitted.values())
    assert len(out) == 400 and peak <= 8 and peak >= 4


def test_each_delivery_is_settled_exactly_once(
    make_message: MessageFactory, settler: RecordingSettler
) -> None:
    def work(message: rs.Message[Any]) -> Any:
        number = int(message.payload)
        if number % 5 == 0:
            raise ValueError("bad")
        if number % 7 == 0:
            return Nack()
        return number

    messages = [make_message(str(i).encode()) for i in range(100)]
    source = rx.from_iterable(messages).pipe(process(work, concurrency=4))
    sink = rs.acknowledger()
    done = threading.Event()
    source.subscribe(sink.on_next, sink.on_error, done.set)
    assert done.wait(10)
    assert settler.twice == []
    assert sorted(settler.acked + settler.nacked) == sorted(m.payload for m in messages)
    assert len(settler.nacked) == len([i for i in range(100) if i % 5 == 0 or i % 7 == 0])


def test_leave_passes_the_message_on_unsettled(
    make_message: MessageFactory, settler: RecordingSettler
) -> None:
    out = run_all(
        rx.from_iterable([make_message(b"a")]),
        process(lambda m: Leave("later")),
        ops.do(rs.acknowledger()),
    )
    assert [(p.result, p.settle) for p in out] == [("later", False)]
    assert settler.acked == []
    out[0].ack()
    assert settler.acked == [b"a"]


def test_a_stateful_handler_keeps_state_per_worker(make_message: MessageFactory) -> None:
    class Count(MessageHandler[int]):
        def init(self) -> int:
            return 0

        def handle(self, message: rs.Message[Any], state: int) -> tuple[int, int]:
            return state + 1, state + 1

    out = run_all(rx.from_iterable([make_message(b"x") for _ in range(5)]), process(Count()))
    assert [p.result for p in out] == [1, 2, 3, 4, 5]


def test_retries_follow_the_schedule_in_virtual_time(
    make_message: MessageFactory, settler: RecordingSettler
) -> None:
    scheduler = TestScheduler()
    calls: list[float] = []

    def flaky(message: rs.Message[Any]) -> str:
        calls.append(scheduler.clock)
        if len(calls) < 3:
            raise ConnectionError("try again")
        return "ok"

    policy = Retry(attempts=4, initial=10.0, factor=3.0, cap=100.0, jitter=0.0)
    results: list[Processed[Any]] = []
    rx.from_iterable([make_message(b"m")]).pipe(
        process(flaky, retry=policy, scheduler=scheduler)
    ).subscribe(results.append)
    scheduler.advance_to(1000.0)
    assert calls == [0.0, 10.0, 40.0]
    assert [(p.result, p.attempts) for p in results] == [("ok", 3)]
    assert settler.nacked == []


def test_after_the_last_attempt_the_message_is_nacked_and_the_stream_goes_on(
    make_message: MessageFactory, settler: RecordingSettler
) -> None:
    scheduler = TestScheduler()
    policy = Retry(attempts=2, initial=1.0, jitter=0.0, on=(ConnectionError,))

    def handler(message: rs.Message[Any]) -> bytes:
        if message.payload == b"poison":
            raise ConnectionError("always")
        if message.payload == b"fatal":
            raise KeyError("not retried")
        return message.payload

    items = [make_message(p) for p in (b"a", b"poison", b"fatal", b"b")]
    results: list[Any] = []
    completed = threading.Event()
    rx.from_iterable(items).pipe(process(handler, retry=policy, scheduler=scheduler)).subscribe(
        results.append, on_completed=completed.set
    )
    scheduler.advance_to(100.0)
    assert completed.is_set()
    assert [p.result for p in results] == [b"a", b"b"]
    assert sorted(settler.nacked) == [b"fatal", b"poison"]


def test_on_failure_error_ends_the_stream(make_message: MessageFactory) -> None:
    with pytest.raises(ZeroDivisionError):
        run_all(
            rx.from_iterable([make_message(b"a")]),
            process(lambda m: 1 / 0, on_failure="error"),
        )


def test_a_call_past_its_timeout_fails_in_virtual_time(
    make_message: MessageFactory, settler: RecordingSettler
) -> None:
    scheduler = TestScheduler()
    started = threading.Event()
    release = threading.Event()
    results: list[Any] = []

    def stuck(message: rs.Message[Any]) -> None:
        started.set()  # its timeout is armed before the call starts
        release.wait(WAIT)

    worker = threading.Thread(
        target=lambda: (
            rx.from_iterable([make_message(b"slow")])
            .pipe(process(stuck, timeout=5.0, scheduler=scheduler))
            .subscribe(results.append)
        ),
        name="test-driver",
    )
    worker.start()
    assert started.wait(WAIT)
    scheduler.advance_to(6.0)  # the timeout fires while the call still runs
    assert settler.nacked == [b"slow"]
    release.set()
    worker.join(WAIT)
    assert results == []  # the late result is ignored


def test_a_coroutine_handler_runs_with_bounded_concurrency(make_message: MessageFactory) -> None:
    import asyncio

    running = 0
    peak = 0
    full = asyncio.Event()  # set once 5 run at once: the bound is reached

    async def work(message: rs.Message[Any]) -> bytes:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 5:
            full.set()
        await asyncio.wait_for(full.wait(), WAIT)
        running -= 1
        return message.payload

    out = run_all(
        rx.from_iterable([make_message(str(i).encode()) for i in range(40)]),
        process(work, concurrency=5),
    )
    assert len(out) == 40 and peak == 5


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(rs.ConfigurationError, match="concurrency"):
        process(print, concurrency=0)
    with pytest.raises(rs.ConfigurationError, match="on_failure"):
        process(print, on_failure="drop")  # type: ignore[arg-type]
    with pytest.raises(rs.ConfigurationError, match="attempts"):
        Retry(attempts=0)


def test_a_coroutine_past_its_timeout_is_cancelled_and_its_slot_freed(
    make_message: MessageFactory, settler: RecordingSettler
) -> None:
    import asyncio

    scheduler = TestScheduler()
    started = threading.Event()
    cancelled: list[bytes] = []

    async def work(message: rs.Message[Any]) -> bytes:
        try:
            if message.payload == b"slow":
                started.set()
                await asyncio.sleep(30)
            return message.payload
        except asyncio.CancelledError:
            cancelled.append(message.payload)
            raise

    out: list[Any] = []
    errors: list[Exception] = []
    ended = threading.Event()
    rx.from_iterable([make_message(b"slow"), make_message(b"fast")]).pipe(
        process(work, timeout=0.2, scheduler=scheduler)
    ).subscribe(out.append, lambda e: (errors.append(e), ended.set()), ended.set)
    assert started.wait(WAIT)
    scheduler.advance_by(0.2)  # "slow" is past its timeout (virtual time)
    assert ended.wait(WAIT)
    assert errors == []
    assert [p.result for p in out] == [b"fast"]
    assert cancelled == [b"slow"] and settler.nacked == [b"slow"]


def test_at_concurrency_one_each_outcome_settles_its_message_and_the_counters_add_up(
    make_message: MessageFactory, settler: RecordingSettler
) -> None:
    def work(message: rs.Message[Any]) -> Any:
        number = int(message.payload)
        if number % 3 == 0:
            raise ValueError("bad")
        if number % 3 == 1:
            return Nack()
        return number * 10

    stats = ProcessingStats()
    messages = [make_message(str(i).encode()) for i in range(9)]
    out = run_all(rx.from_iterable(messages), process(work, stats=stats))
    assert [p.result for p in out] == [20, 50, 80]
    assert [p.attempts for p in out] == [1, 1, 1]
    assert sorted(settler.nacked) == sorted(str(i).encode() for i in range(9) if i % 3 != 2)
    assert settler.acked == [] and settler.twice == []
    assert (stats.received, stats.processed, stats.failed, stats.in_flight) == (9, 6, 3, 0)


def test_disposing_during_a_call_at_concurrency_one_leaves_its_message_unsettled(
    make_message: MessageFactory, settler: RecordingSettler
) -> None:
    stats = ProcessingStats()
    holder: list[Any] = []
    emitted: list[Any] = []

    def work(message: rs.Message[Any]) -> Any:
        if message.payload == b"2":
            holder[0].dispose()  # the stream ends while this call runs
        return message.payload

    subject: Subject[rs.Message[Any]] = Subject()
    holder.append(subject.pipe(process(work, stats=stats)).subscribe(emitted.append))
    for payload in (b"1", b"2", b"3"):
        subject.on_next(make_message(payload))
    assert [p.result for p in emitted] == [b"1"]
    assert settler.acked == [] and settler.nacked == []
    assert (stats.received, stats.processed, stats.in_flight) == (1, 1, 0)
