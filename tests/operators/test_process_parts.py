"""The parts process() is made of, alone: the inline emitter, the executors, handler calls."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from reactivex import abc

import rxstargate as rs
from rxstargate.operators import Leave, MessageHandler
from rxstargate.operators._emit import InlineObserver
from rxstargate.operators._executors import LoopExecutor, PoolExecutor
from rxstargate.operators._handlers import (
    HandlerCall,
    LeaveRefusedError,
    NotAwaitedError,
    is_coroutine_callable,
)

from .conftest import MessageFactory

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

WAIT = 10.0


class Recorder(abc.ObserverBase[Any]):
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.emitter: InlineObserver[Any] | None = None

    def on_next(self, value: Any) -> None:
        self.events.append(value)
        if value == "push 2" and self.emitter is not None:
            self.emitter.on_next(2)  # re-entrant: after this call
            self.emitter.on_completed()  # and the end after that
            self.events.append("returning")

    def on_error(self, error: Exception) -> None:
        self.events.append(("error", error))

    def on_completed(self) -> None:
        self.events.append("completed")


def test_a_reentrant_emission_waits_for_the_current_one_and_the_end_for_both() -> None:
    recorder = Recorder()
    emitter: InlineObserver[Any] = InlineObserver(recorder)
    recorder.emitter = emitter
    emitter.on_next("push 2")
    emitter.on_next("after the end")
    assert recorder.events == ["push 2", "returning", 2, "completed"]
    assert emitter.ended


def test_an_observer_that_raises_gets_its_error_once_and_nothing_more() -> None:
    boom = ValueError("my on_next")
    raised: list[bool] = []

    class Raising(Recorder):
        def on_next(self, value: Any) -> None:
            super().on_next(value)
            raise boom

    recorder = Raising()
    emitter: InlineObserver[Any] = InlineObserver(recorder, on_raised=lambda: raised.append(True))
    emitter.on_next(1)  # never raises into the emitting thread
    emitter.on_next(2)
    emitter.on_completed()
    assert recorder.events == [1, ("error", boom)] and raised == [True]


def test_a_terminal_callback_that_raises_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Bad(Recorder):
        def on_completed(self) -> None:
            raise RuntimeError("my on_completed")

    InlineObserver(Bad()).on_completed()
    assert "terminal callback raised" in caplog.text


def test_the_pool_drops_work_handed_over_after_close() -> None:
    pool = PoolExecutor(2)
    ran = threading.Event()
    pool.submit(lambda _: ran.set(), None)
    assert ran.wait(WAIT)
    pool.close()
    late: list[int] = []
    pool.submit(late.append, 1)
    assert late == []


def test_the_loop_frees_a_cancelled_task_only_once_it_handled_the_cancellation() -> None:
    loop = LoopExecutor()
    started = threading.Event()
    seen: list[str] = []
    done = threading.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(WAIT)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    def on_done(task: asyncio.Future[Any]) -> None:
        seen.append("done" if task.cancelled() else "finished")
        done.set()

    call = loop.submit(work(), on_done)
    assert call is not None and started.wait(WAIT)
    call.cancel()
    assert done.wait(WAIT)
    assert seen == ["cancelled", "done"]
    loop.close()


def test_the_loop_never_starts_a_coroutine_after_close() -> None:
    loop = LoopExecutor()
    ran: list[bool] = []

    async def work() -> None:
        ran.append(True)

    loop.close()
    coroutine = work()
    assert loop.submit(coroutine, lambda task: None) is None
    assert coroutine.cr_frame is None  # closed unrun: no "never awaited" warning
    assert ran == []


def test_a_stateful_handler_keeps_one_state_per_worker(make_message: MessageFactory) -> None:
    class Count(MessageHandler[int]):
        def init(self) -> int:
            return 0

        def handle(self, message: rs.Message[Any], state: int) -> tuple[int, int]:
            return state + 1, state + 1

    call = HandlerCall(Count())
    message = make_message(b"x")
    assert [call.call(message, worker) for worker in (0, 0, 1, 0)] == [1, 2, 1, 3]


def test_a_handler_call_refuses_what_process_refuses(make_message: MessageFactory) -> None:
    async def later(message: rs.Message[Any]) -> None:
        return None

    message = make_message(b"x")
    with pytest.raises(NotAwaitedError, match="async def"):
        HandlerCall(lambda m: later(m)).call(message, 0)
    with pytest.raises(LeaveRefusedError, match="Leave"):
        HandlerCall(lambda m: Leave(1), refuse_leave=True).call(message, 0)
    assert HandlerCall(lambda m: Leave(1)).call(message, 0) == Leave(1)
    assert is_coroutine_callable(later) and HandlerCall(later).is_async
