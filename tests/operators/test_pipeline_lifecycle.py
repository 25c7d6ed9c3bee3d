"""Pipeline life: ending releases the socket, stop() from many threads or from the handler,
the restart budget per outage, misuse refused with typed errors (never a hang)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import reactivex as rx
from reactivex.disposable import CompositeDisposable, Disposable
from reactivex.subject import Subject

import rxstargate as rs
import rxstargate._pipeline_run as pipeline_run
import rxstargate.operators as rso
from rxstargate.testing import MemoryPulsar
from tests.faults import unacked_messages
from tests.operators.conftest import MessageFactory, RecordingSettler

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

WAIT = 10.0


def wait_until(predicate: Any, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def produce(client: rs.Client, topic_name: str, count: int) -> None:
    rx.from_iterable([str(i).encode() for i in range(count)]).subscribe(
        client.topic(topic_name).producer()
    )


class Sources:
    """A source factory for Pipeline: each (re)start gets a fresh Subject the test drives."""

    def __init__(self) -> None:
        self.subjects: list[Subject[rs.Message[Any]]] = []

    def __call__(self) -> rx.Observable[rs.Message[Any]]:
        subject: Subject[rs.Message[Any]] = Subject()
        self.subjects.append(subject)
        return subject

    def live(self, count: int) -> bool:
        """True once the ``count``-th source exists and the pipeline subscribed to it."""
        return len(self.subjects) == count and bool(self.subjects[-1].observers)


# -- 1. a pipeline that ends releases its consumer ---------------------------------------


def test_a_pipeline_that_fails_for_good_closes_its_socket(
    client: rs.Client, topic_name: str
) -> None:
    produce(client, topic_name, 10)

    def handle(message: rs.Message[Any]) -> None:
        if message.payload == b"3":
            raise RuntimeError("fatal 3")

    pipeline = client.topic(topic_name).consume(
        "work", handle, on_failure="error", subscription_type="Exclusive", start="earliest"
    )
    pipeline.start()
    with pytest.raises(RuntimeError, match="fatal 3"):
        pipeline.wait(WAIT)
    assert pipeline.state is rs.PipelineState.FAILED
    wait_until(lambda: client.streams == [])  # the consumer's socket is closed
    pipeline.stop()  # safe on a failed pipeline
    assert pipeline.state is rs.PipelineState.FAILED
    # The Exclusive subscription takes a new consumer, which gets what was not acked.
    rest = unacked_messages(client, topic_name, "work", "Exclusive")
    assert {m.payload for m in rest} == {str(i).encode() for i in range(3, 10)}


def test_a_pipeline_failed_by_its_handler_releases_its_source(make_message: MessageFactory) -> None:
    sources = Sources()
    disposed: list[bool] = []

    def source() -> rx.Observable[rs.Message[Any]]:
        subject = sources()
        return rx.Observable(
            lambda observer, scheduler=None: CompositeDisposable(
                subject.subscribe(observer), Disposable(lambda: disposed.append(True))
            )
        )

    def handle(message: rs.Message[Any]) -> None:
        raise RuntimeError("fatal")

    pipeline = rs.Pipeline(source, handle, restart=rs.Backoff(), on_failure="error")
    pipeline.start()
    sources.subjects[0].on_next(make_message(b"a"))  # fails the stream below the source
    assert pipeline.state is rs.PipelineState.FAILED
    assert disposed == [True]
    pipeline.stop()
    assert pipeline.state is rs.PipelineState.FAILED
    assert disposed == [True]
    with pytest.raises(RuntimeError, match="fatal"):
        pipeline.wait(0)


# -- 2. stop() from two threads ------------------------------------------------------------


def test_concurrent_stops_all_wait_for_the_drain(client: rs.Client, topic_name: str) -> None:
    produce(client, topic_name, 20)
    release = threading.Event()
    lock = threading.Lock()
    started: set[bytes] = set()
    finished: set[bytes] = set()

    def handle(message: rs.Message[Any]) -> None:
        with lock:
            started.add(message.payload)
        release.wait(WAIT)
        with lock:
            finished.add(message.payload)

    pipeline = client.topic(topic_name).consume(
        "work", handle, concurrency=2, max_in_flight=4, start="earliest"
    )
    pipeline.start()
    wait_until(lambda: len(started) == 2)
    first = threading.Thread(target=pipeline.stop, kwargs={"timeout": WAIT})
    first.start()
    wait_until(lambda: pipeline.state is rs.PipelineState.STOPPING)
    second = threading.Thread(target=pipeline.stop, kwargs={"timeout": WAIT})
    second.start()
    try:
        second.join(0.2)  # a window in which the second stop() must not return
        assert second.is_alive(), "the second stop() returned while the first was draining"
        assert pipeline.state is rs.PipelineState.STOPPING
    finally:
        release.set()
    first.join(WAIT)
    second.join(WAIT)
    assert not first.is_alive() and not second.is_alive()
    assert pipeline.state is rs.PipelineState.STOPPED
    assert pipeline.stats.in_flight == 0
    rest = {m.payload for m in unacked_messages(client, topic_name, "work", "Shared")}
    assert finished and not finished & rest  # finished work was acked, not redelivered
    assert finished | rest == {str(i).encode() for i in range(20)}


# -- 3. stop() from inside the handler --------------------------------------------------


class StopAt(rso.MessageHandler[int]):
    def __init__(self, on_message: Any) -> None:
        self.on_message = on_message

    def init(self) -> int:
        return 0

    def handle(self, message: rs.Message[Any], state: int) -> tuple[Any, int]:
        self.on_message(message)
        return None, state + 1


@pytest.mark.parametrize(
    ("kind", "concurrency"), [("plain", 1), ("plain", 4), ("async", 2), ("stateful", 1)]
)
def test_stop_from_the_handler_returns_at_once_and_settles_that_message(
    client: rs.Client, topic_name: str, kind: str, concurrency: int
) -> None:
    produce(client, topic_name, 30)
    lock = threading.Lock()
    handled: set[bytes] = set()
    seen_state: list[rs.PipelineState] = []
    pipeline: rs.Pipeline | None = None

    def on_message(message: rs.Message[Any]) -> None:
        if message.payload == b"10":
            assert pipeline is not None
            pipeline.stop(timeout=5)
            seen_state.append(pipeline.state)
        with lock:
            handled.add(message.payload)

    async def on_message_async(message: rs.Message[Any]) -> None:
        on_message(message)

    handler: Any = {"plain": on_message, "async": on_message_async, "stateful": StopAt(on_message)}
    pipeline = client.topic(topic_name).consume(
        "work", handler[kind], concurrency=concurrency, max_in_flight=20, start="earliest"
    )
    pipeline.start()
    pipeline.wait(WAIT)
    # stop() began the stop and returned: it could not finish while its caller ran.
    assert seen_state == [rs.PipelineState.STOPPING]
    assert pipeline.state is rs.PipelineState.STOPPED
    assert b"10" in handled and pipeline.stats.in_flight == 0
    rest = {m.payload for m in unacked_messages(client, topic_name, "work", "Shared")}
    assert not handled & rest  # the caller's own message (and all finished work) was acked
    assert handled | rest == {str(i).encode() for i in range(30)}


def test_a_second_stop_from_the_handler_does_not_wait_either(
    make_message: MessageFactory, settler: RecordingSettler
) -> None:
    sources = Sources()
    states: list[rs.PipelineState] = []

    def handle(message: rs.Message[Any]) -> None:
        pipeline.stop()
        pipeline.stop()
        states.append(pipeline.state)

    pipeline = rs.Pipeline(sources, handle, restart=rs.Backoff())
    pipeline.start()
    sources.subjects[0].on_next(make_message(b"a"))
    pipeline.wait(WAIT)
    assert states == [rs.PipelineState.STOPPING]
    assert pipeline.state is rs.PipelineState.STOPPED
    assert settler.acked == [b"a"]


# -- 4. the restart budget is per outage -------------------------------------------------


def quick_restart() -> rs.Backoff:
    return rs.Backoff(initial=0.01, cap=0.01, jitter=0.0, give_up_after=0.025)  # two restarts


def test_the_restart_backoff_resets_once_a_restarted_stream_delivers(
    make_message: MessageFactory, settler: RecordingSettler
) -> None:
    sources = Sources()
    pipeline = rs.Pipeline(sources, lambda m: None, restart=quick_restart()).start()
    for outage in range(4):
        wait_until(lambda n=outage + 1: sources.live(n))
        sources.subjects[-1].on_next(make_message(str(outage).encode()))
        sources.subjects[-1].on_error(rs.StargateConnectionError("lost"))
    wait_until(lambda: len(sources.subjects) == 5 or pipeline.state is rs.PipelineState.FAILED)
    assert pipeline.state is not rs.PipelineState.FAILED, pipeline.error
    assert pipeline.restarts == 4
    pipeline.stop()
    assert settler.acked == [b"0", b"1", b"2", b"3"]


def test_restarts_that_deliver_nothing_spend_the_budget(make_message: MessageFactory) -> None:
    sources = Sources()
    pipeline = rs.Pipeline(sources, lambda m: None, restart=quick_restart()).start()
    sources.subjects[0].on_next(make_message(b"a"))  # the first run worked
    for attempt in range(3):
        wait_until(lambda n=attempt + 1: sources.live(n))
        sources.subjects[-1].on_error(rs.StargateConnectionError("refused"))
    with pytest.raises(rs.StargateConnectionError):
        pipeline.wait(WAIT)
    assert pipeline.restarts == 2


def test_the_restart_backoff_resets_after_a_steady_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [0.0]
    monkeypatch.setattr(pipeline_run, "now", lambda: clock[0])
    sources = Sources()
    pipeline = rs.Pipeline(sources, lambda m: None, restart=quick_restart()).start()
    for outage in range(4):
        wait_until(lambda n=outage + 1: sources.live(n))
        clock[0] += pipeline_run.STEADY_SECONDS  # up that long, with nothing to deliver
        sources.subjects[-1].on_error(rs.StargateConnectionError("lost"))
    wait_until(lambda: len(sources.subjects) == 5 or pipeline.state is rs.PipelineState.FAILED)
    assert pipeline.state is not rs.PipelineState.FAILED, pipeline.error
    pipeline.stop()


# -- 5. misuse: typed errors, never a hang -----------------------------------------------


def test_wait_on_a_pipeline_never_started_raises() -> None:
    pipeline = rs.Pipeline(Sources(), lambda m: None, restart=rs.Backoff())
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            pipeline.wait()
        except BaseException as exc:
            raised.append(exc)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(WAIT)
    assert not waiter.is_alive(), "wait() on a pipeline never started blocks"
    assert len(raised) == 1 and isinstance(raised[0], rs.StargateError)
    assert not isinstance(raised[0], rs.StargateTimeoutError)
    assert "start" in str(raised[0])


def test_start_after_stop_raises_closed_error(make_message: MessageFactory) -> None:
    sources = Sources()
    pipeline = rs.Pipeline(sources, lambda m: None, restart=rs.Backoff()).start()
    assert pipeline.start() is pipeline  # idempotent while running
    pipeline.stop()
    with pytest.raises(rs.ClosedError, match="stopped"):
        pipeline.start()
    assert len(sources.subjects) == 1


def test_start_after_a_failure_raises_closed_error() -> None:
    sources = Sources()
    pipeline = rs.Pipeline(sources, lambda m: None, restart=rs.Backoff()).start()
    sources.subjects[0].on_error(rs.AuthorizationError(403))
    with pytest.raises(rs.ClosedError, match="failed"):
        pipeline.start()


def test_stop_before_start_ends_it_for_good() -> None:
    sources = Sources()
    pipeline = rs.Pipeline(sources, lambda m: None, restart=rs.Backoff())
    pipeline.stop()
    assert pipeline.state is rs.PipelineState.STOPPED
    pipeline.wait()  # ended: returns at once
    with pytest.raises(rs.ClosedError):
        pipeline.start()
    assert sources.subjects == []


def test_wait_and_stop_take_seconds_or_a_timedelta() -> None:
    pipeline = rs.Pipeline(Sources(), lambda m: None, restart=rs.Backoff()).start()
    with pytest.raises(rs.StargateTimeoutError):
        pipeline.wait(timedelta(milliseconds=10))
    with pytest.raises(rs.StargateTimeoutError):
        pipeline.wait(0.01)
    for bad in ("5", -1, float("nan"), True):
        with pytest.raises(rs.ConfigurationError, match="timeout"):
            pipeline.wait(bad)  # type: ignore[arg-type]
        with pytest.raises(rs.ConfigurationError, match="timeout"):
            pipeline.stop(bad)  # type: ignore[arg-type]
    assert pipeline.state is rs.PipelineState.RUNNING
    pipeline.stop(timedelta(seconds=5))
    assert pipeline.state is rs.PipelineState.STOPPED
    pipeline.wait(timedelta(seconds=1))


# -- 6. the restart policy is checked ------------------------------------------------------


def test_consume_refuses_a_restart_that_is_not_a_backoff(
    client: rs.Client, topic_name: str
) -> None:
    with pytest.raises(rs.ConfigurationError, match="restart"):
        client.topic(topic_name).consume("work", print, restart=5)  # type: ignore[arg-type]


def test_a_pipeline_refuses_a_restart_that_is_not_a_backoff() -> None:
    with pytest.raises(rs.ConfigurationError, match="restart"):
        rs.Pipeline(Sources(), print, restart=5)  # type: ignore[arg-type]


# -- 7. closing the client while the pipeline waits to restart -----------------------------


def restart_threads() -> list[threading.Thread]:
    return [
        t for t in threading.enumerate() if t.name == "rxstargate-pipeline-restart" and t.is_alive()
    ]


def test_closing_the_client_while_it_waits_to_restart_stops_the_pipeline_at_once(
    memory: MemoryPulsar, client: rs.Client, topic_name: str
) -> None:
    # An Exclusive consumer holds the subscription: the pipeline's consumer is refused (409,
    # retriable) until its reconnect gives up, then it waits 30 s to restart.
    received = threading.Event()
    holder = client.topic(topic_name).observe("work", subscription_type="Exclusive")
    held = holder.subscribe(lambda m: received.set())
    try:
        produce(client, topic_name, 1)
        assert received.wait(WAIT)  # the holder is connected
        quick = rs.Backoff(initial=0.01, cap=0.01, jitter=0.0, give_up_after=0.02)
        with memory.client(reconnect=quick) as other:
            pipeline = other.topic(topic_name).consume(
                "work",
                lambda m: None,
                subscription_type="Exclusive",
                restart=rs.Backoff(initial=30, cap=30, jitter=0.0, give_up_after=None),
            )
            pipeline.start()
            wait_until(lambda: pipeline.state is rs.PipelineState.RESTARTING)
            assert other.streams == []  # the restart timer is not listed as a stream
            other.close()
            assert pipeline.state is rs.PipelineState.STOPPED  # at once, as when it runs
            assert restart_threads() == []  # close() cancelled the timer and waited for it
            pipeline.wait(0)  # stopped, not failed
            assert pipeline.restarts == 0
    finally:
        held.dispose()


def test_a_restart_that_finds_its_client_closed_ends_stopped() -> None:
    closed = rs.Client("ws://127.0.0.1:9")  # never connects: it is closed at once
    closed.close()
    topic = closed.topic("persistent://public/default/closed")
    pipeline = topic.consume("work", lambda m: None, restart=rs.Backoff(initial=30, cap=30))
    pipeline.start()  # its source finds the client closed: nothing to restart
    assert pipeline.state is rs.PipelineState.STOPPED
    pipeline.wait(0)


# -- 8. wait() from the handler --------------------------------------------------------------


def test_wait_from_the_handler_raises_at_once(client: rs.Client, topic_name: str) -> None:
    produce(client, topic_name, 1)
    raised: list[BaseException] = []
    pipeline: rs.Pipeline | None = None

    def handle(message: rs.Message[Any]) -> None:
        assert pipeline is not None
        pipeline.stop()
        try:
            pipeline.wait(WAIT)
        except BaseException as exc:
            raised.append(exc)

    pipeline = client.topic(topic_name).consume("work", handle, start="earliest")
    pipeline.start()  # made first: the handler may run before start() returns
    pipeline.wait(WAIT)
    assert len(raised) == 1 and isinstance(raised[0], rs.StargateError)
    assert not isinstance(raised[0], rs.StargateTimeoutError)
    assert "handler" in str(raised[0])
    assert pipeline.state is rs.PipelineState.STOPPED


# -- 9. in_flight across restarts ------------------------------------------------------------


def test_messages_dropped_by_a_failed_run_are_counted_out_of_in_flight(
    make_message: MessageFactory, settler: RecordingSettler
) -> None:
    sources = Sources()
    release = threading.Event()
    started = threading.Semaphore(0)

    def handle(message: rs.Message[Any]) -> None:
        started.release()
        release.wait(WAIT)

    pipeline = rs.Pipeline(sources, handle, restart=quick_restart(), concurrency=2).start()
    for payload in (b"a", b"b", b"c"):  # two running, one queued
        sources.subjects[0].on_next(make_message(payload))
    assert started.acquire(timeout=WAIT) and started.acquire(timeout=WAIT)
    sources.subjects[0].on_error(rs.StargateConnectionError("lost"))  # drops all three
    assert pipeline.stats.in_flight == 0
    release.set()
    wait_until(lambda: sources.live(2))
    for payload in (b"a", b"b", b"c"):  # redelivered
        sources.subjects[1].on_next(make_message(payload))
    wait_until(lambda: pipeline.stats.processed == 3)
    pipeline.stop()
    assert sorted(settler.acked) == [b"a", b"b", b"c"]
    assert pipeline.stats.in_flight == 0
    assert pipeline.stats.received == 3


# -- 10. Leave in consume() ------------------------------------------------------------------


def test_a_consume_handler_returning_leave_fails_that_message(
    client: rs.Client, topic_name: str
) -> None:
    produce(client, topic_name, 3)
    pipeline = client.topic(topic_name).consume(
        "work", lambda m: rso.Leave(m.payload), on_failure="error", start="earliest"
    )
    pipeline.start()
    with pytest.raises(rs.ConfigurationError, match="Leave"):
        pipeline.wait(WAIT)
    assert pipeline.state is rs.PipelineState.FAILED


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_leave_in_a_pipeline_is_settled_by_on_failure_and_never_retried(
    make_message: MessageFactory, settler: RecordingSettler, concurrency: int
) -> None:
    sources = Sources()
    calls: list[bytes] = []

    def handle(message: rs.Message[Any]) -> Any:
        calls.append(message.payload)
        return rso.Leave(message.payload) if message.payload == b"a" else None

    pipeline = rs.Pipeline(
        sources,
        handle,
        restart=rs.Backoff(),
        concurrency=concurrency,
        retry=rso.Retry(attempts=3, initial=0, cap=0),
    ).start()
    sources.subjects[0].on_next(make_message(b"a"))
    sources.subjects[0].on_next(make_message(b"b"))
    wait_until(lambda: pipeline.stats.in_flight == 0 and pipeline.stats.received == 2)
    pipeline.stop()
    assert settler.nacked == [b"a"] and settler.acked == [b"b"]
    assert sorted(calls) == [b"a", b"b"]  # not retried
    assert pipeline.stats.failed == 1 and pipeline.stats.retried == 0


# -- 11. the source ending by itself (its client closed) -------------------------------------


def test_calls_not_started_when_the_source_completes_by_itself_never_start(
    make_message: MessageFactory, settler: RecordingSettler
) -> None:
    """``client.close()`` completes the consumer's stream and closes its socket: a queued
    message could not be acked any more, so its call must not start (the broker redelivers
    it, and it would be handled twice)."""
    sources = Sources()
    release = threading.Event()
    lock = threading.Lock()
    started: list[bytes] = []

    def handle(message: rs.Message[Any]) -> None:
        with lock:
            started.append(message.payload)
        release.wait(WAIT)

    pipeline = rs.Pipeline(sources, handle, restart=rs.Backoff(), concurrency=2).start()
    for payload in (b"a", b"b", b"c", b"d"):  # two running, two queued
        sources.subjects[0].on_next(make_message(payload))
    wait_until(lambda: len(started) == 2)
    sources.subjects[0].on_completed()  # what closing the client does to the stream
    release.set()
    pipeline.wait(WAIT)
    assert pipeline.state is rs.PipelineState.STOPPED
    assert sorted(started) == [b"a", b"b"]
    assert sorted(settler.acked) == [b"a", b"b"] and settler.nacked == []
    assert pipeline.stats.in_flight == 0 and pipeline.stats.received == 2


# -- 12. concurrency is bounded by what can be in hand ----------------------------------------


def test_consume_refuses_more_concurrency_than_max_in_flight_naming_both() -> None:
    before = threading.active_count()
    with rs.Client("ws://127.0.0.1:9") as client:  # refused before any traffic
        topic = client.topic("orders")
        with pytest.raises(
            rs.ConfigurationError, match=r"concurrency \(1000000\).*max_in_flight \(1000\)"
        ):
            topic.consume("work", print, concurrency=10**6)
        with pytest.raises(rs.ConfigurationError, match=r"concurrency \(9\).*max_in_flight \(8\)"):
            topic.consume("work", print, concurrency=9, max_in_flight=8)
        pipeline = topic.consume("work", print, concurrency=8, max_in_flight=8)  # the bound
        assert pipeline.state is rs.PipelineState.NEW
        assert threading.active_count() == before


def test_process_refuses_a_concurrency_no_stream_could_use() -> None:
    with pytest.raises(rs.ConfigurationError, match="concurrency must be an int from 1 to 100,000"):
        rso.process(print, concurrency=10**6)
    with pytest.raises(rs.ConfigurationError, match="concurrency"):
        rs.Pipeline(Sources(), print, concurrency=100_001)
    assert rso.process(print, concurrency=100_000) is not None
