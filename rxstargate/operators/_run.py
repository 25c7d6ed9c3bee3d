"""One subscription to ``process``: the driver between Rx, the lanes and the executors.

:class:`~rxstargate.operators._lanes.Lanes` decides (what starts, what a failure means, when
the stream completes); an executor runs the calls; this driver holds the lock around the
lanes, keeps the timers (timeouts and retry delays, on an Rx scheduler) and carries out each
decision: emit, settle, count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reactivex import abc
from reactivex.disposable import SingleAssignmentDisposable

from rxstargate._serial import SerialObserver
from rxstargate._timers import TimerScheduler
from rxstargate.exceptions import AckError, SchemaError, StargateTimeoutError
from rxstargate.models import Message
from rxstargate.operators._executors import LoopExecutor, PoolExecutor
from rxstargate.operators._failure import FailurePolicy, not_a_message, settle_failure
from rxstargate.operators._handlers import Handler, HandlerCall
from rxstargate.operators._lanes import (
    Action,
    Dropped,
    Failed,
    Job,
    JobState,
    Lanes,
    RetryLater,
    Start,
    Succeeded,
)
from rxstargate.operators._outcomes import Leave, Nack, Processed, processed
from rxstargate.operators._retry import Retry
from rxstargate.operators._stats import UNCOUNTED, ProcessingStats, Uncounted

__all__ = ["ProcessSettings", "Run"]

log = logging.getLogger("rxstargate.operators")

_Start = Start[Message[Any]]
_OUTCOMES = (Nack, Leave)  # made once: ``Nack | Leave`` builds a new union at each call
_Job = Job[Message[Any]]


@dataclass(frozen=True, slots=True)
class ProcessSettings:
    """The checked arguments of one ``process`` stage (see ``process()``)."""

    handler: Handler
    concurrency: int
    key_ordered: bool
    timeout: float | None
    retry: Retry | None
    policy: FailurePolicy
    scheduler: abc.SchedulerBase | None
    stats: ProcessingStats | None
    refuse_leave: bool = False  # a Leave fails its message: nothing later would settle it


def _lapsed_settler(settler: Any) -> bool:
    return bool(getattr(settler, "lapsed", False))


def _lapsed(message: Message[Any]) -> bool:
    """Whether ``message`` came from a consumer's socket that is gone: it cannot be settled
    any more and the broker redelivers it, so its handler is not to be called (as Pulsar's
    clients clear their receive queue on reconnect)."""
    return _lapsed_settler(message._settler)


class Run:
    """The state of one subscription to ``process``, with the lanes' bookkeeping.

    A stage that calls its handler inline, with no timeout and no retry, has nothing for the
    lanes to decide: it is a :class:`~rxstargate.operators._direct.DirectRun` instead.
    """

    def __init__(
        self,
        settings: ProcessSettings,
        call: HandlerCall,
        observer: abc.ObserverBase[Processed[Any]],
    ) -> None:
        self._call = call
        self._handle = call.call
        # One call at a time keeps each key's order by itself, unless a message that waits
        # for its retry lets the next one of its key run first.
        key_ordered = settings.key_ordered and (
            settings.concurrency > 1 or settings.retry is not None
        )
        self._lanes: Lanes[Message[Any]] = Lanes(
            settings.concurrency, key_ordered=key_ordered, retry=settings.retry, lapsed=_lapsed
        )
        self._last_settler: Any = None  # the settler of the last message taken in
        self._timeout = settings.timeout
        self._policy = settings.policy
        self._scheduler = settings.scheduler or TimerScheduler.shared()
        # Nobody reads counters that were not asked for: counting them would cost a lock each.
        self._stats: ProcessingStats | Uncounted = settings.stats or UNCOUNTED
        self._counting = settings.stats is not None  # the per-message path skips the calls
        self._lock = threading.Lock()
        self._delays: dict[_Job, SingleAssignmentDisposable] = {}  # waiting for a retry
        # Where calls run: a plain handler at concurrency 1 runs on the thread that starts it
        # (the delivering thread, as ops.map would), others on a pool or an event loop.
        self._inline = settings.concurrency == 1 and not self._call.is_async
        self._loop = LoopExecutor() if self._call.is_async else None
        self._pool = None if self._inline or self._loop else PoolExecutor(settings.concurrency)
        # An exception the observer raises ends the stream there: stop calling the handler.
        # Calls end on other threads, or with timers, so emission needs a lock.
        self._observer = SerialObserver(observer, on_raised=self.dispose)

    # -- upstream and the stream's end ----------------------------------------------------

    def on_next(self, message: Message[Any]) -> None:
        if not isinstance(message, Message):
            self.on_error(not_a_message(message))
            return
        if message.schema_error is not None:
            self._refuse(message)
            return
        settler, swept = message._settler, None
        with self._lock:
            if self._lanes.ended:
                return  # after the end: left alone
            if settler is not self._last_settler:
                if self._last_settler is not None and _lapsed_settler(self._last_settler):
                    swept = self._lanes.drop_lapsed()  # a new socket's: the old one's go
                self._last_settler = settler
            actions = self._lanes.offer(message, message.key)
        self._stats.add("received")
        if swept:
            self._perform(swept)
        self._perform(actions)

    def on_error(self, error: Exception) -> None:
        self._stop()
        self._observer.on_error(error)

    def on_completed(self) -> None:
        self._decide(self._lanes.upstream_done)

    def dispose(self) -> None:
        self._stop()

    def drop_delayed(self) -> None:
        """The stream is stopping: leave the messages that only wait for a retry delay
        unsettled (the broker redelivers them) instead of waiting for it, and any retry from
        now on. With ``key_ordered`` the messages behind one of them (its key) are left too,
        so that none of them is settled before it."""
        self._decide(self._lanes.drop_delayed)

    def drop_waiting(self) -> None:
        """The source's socket is gone: the messages whose calls have not started are left
        unsettled (they could not be acked; the broker redelivers them) and never start."""
        self._decide(self._lanes.drop_waiting)

    def _refuse(self, message: Message[Any]) -> None:
        """A payload that does not match the schema: settled at once (retrying cannot help)."""
        with self._lock:
            if self._lanes.ended:
                return
        self._stats.add("received")
        error = SchemaError(
            f"message {message.message_id} does not match the schema: {message.schema_error}",
            message_id=str(message.message_id),
        )
        self._failed(message, error, 1)

    def _stop(self) -> None:
        self._decide(self._lanes.stop)
        self._close_executor()

    def _close_executor(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._loop is not None:
            self._loop.close()

    # -- calls ----------------------------------------------------------------------------

    def _start(self, start: _Start) -> None:
        if self._pool is not None:
            self._pool.submit(self._run_call, start)
        else:
            self._start_async(start)

    def _run_call(self, start: _Start) -> None:
        """A pool thread's work: call a plain handler and act on how it went."""
        self._perform(self._call_here(start))

    def _call_here(self, start: _Start) -> list[Action[Message[Any]]]:
        """Call a plain handler on this thread; what the lanes decide about its outcome."""
        if self._lanes.ended:
            return []  # ended while this call waited for its thread: it never starts
        if _lapsed(start.job.item):  # its socket dropped while this call waited for a thread
            return self._never_started(start)
        timer = None
        if self._timeout is not None:
            timer = self._scheduler.schedule_relative(
                self._timeout, lambda *_: self._timed_out(start, None)
            )
        try:
            result = self._handle(start.job.item, start.worker)
            error: BaseException | None = None
        except Exception as exc:
            result, error = None, exc
        if timer is not None:
            timer.dispose()
        with self._lock:
            return self._lanes.returned(start.job, start.attempt, start.worker, result, error)

    def _never_started(self, start: _Start) -> list[Action[Message[Any]]]:
        """A lapsed message's call is not made: it is dropped with the others of its socket."""
        with self._lock:
            actions = self._lanes.drop_lapsed()
            actions += self._lanes.returned(start.job, start.attempt, start.worker)
        return actions

    def _start_async(self, start: _Start) -> None:
        if _lapsed(start.job.item):
            self._perform(self._never_started(start))
            return
        timer = SingleAssignmentDisposable()

        def done(task: asyncio.Future[Any]) -> None:
            timer.dispose()
            if task.cancelled():
                self._returned(start, None, StargateTimeoutError("cancelled"))
            elif task.exception() is not None:
                self._returned(start, None, task.exception())
            else:
                self._returned(start, task.result(), None)

        assert self._loop is not None
        call = self._loop.submit(self._call.call_async(start.job.item, start.worker), done)
        if call is not None and self._timeout is not None:
            timer.disposable = self._scheduler.schedule_relative(
                self._timeout, lambda *_: self._timed_out(start, call.cancel)
            )

    def _returned(self, start: _Start, result: Any, error: BaseException | None) -> None:
        with self._lock:
            actions = self._lanes.returned(start.job, start.attempt, start.worker, result, error)
        self._perform(actions)

    def _timed_out(self, start: _Start, cancel: Callable[[], None] | None) -> None:
        message = start.job.item
        error = StargateTimeoutError(
            f"handling message {message.message_id} took longer than {self._timeout} s"
        )
        self._decide(lambda: self._lanes.timed_out(start.job, start.attempt, error))
        if cancel is not None:
            cancel()  # a coroutine can be stopped; a thread cannot

    def _retry_due(self, job: _Job) -> None:
        with self._lock:
            self._delays.pop(job, None)
            actions = self._lanes.retry_due(job)
        self._perform(actions)

    # -- carrying out what the lanes decided ------------------------------------------------

    def _decide(self, event: Any) -> None:
        """Report ``event`` (a method of the lanes) under the lock, then act on its answer."""
        with self._lock:
            actions = event()
        self._perform(actions)

    def _perform(self, actions: list[Action[Message[Any]]]) -> None:
        # An inline call's outcome (and the start it makes room for) is appended to the list
        # being walked: a run of inline calls loops here instead of deepening the stack.
        for action in actions:
            if isinstance(action, Start):
                if self._inline:
                    actions.extend(self._call_here(action))
                else:
                    self._start(action)
            elif isinstance(action, Succeeded):
                self._succeeded(action)
            elif isinstance(action, Failed):
                self._failed(action.job.item, action.error, action.attempt)
            elif isinstance(action, RetryLater):
                self._retry_later(action)
            elif isinstance(action, Dropped):
                self._dropped(action)
            else:  # Completed
                self._close_executor()
                self._observer.on_completed()

    def _succeeded(self, action: Succeeded[Message[Any]]) -> None:
        self._settle(action.job.item, action.result, action.attempt)

    def _settle(self, message: Message[Any], result: Any, attempt: int) -> None:
        """A call succeeded on ``attempt``: emit its item, or settle as its outcome says."""
        if self._counting:
            self._stats.add("processed")
        if not isinstance(result, _OUTCOMES):
            self._observer.on_next(processed(message, result, True, attempt))
        elif isinstance(result, Leave):
            self._observer.on_next(processed(message, result.result, False, attempt))
        else:
            with contextlib.suppress(AckError):
                message.nack()

    def _failed(self, message: Message[Any], error: BaseException, attempt: int) -> None:
        self._stats.add("failed")
        if self._policy == "error":
            self.on_error(error if isinstance(error, Exception) else RuntimeError(error))
            return
        log.info("message %s failed after %d attempt(s): %r", message.message_id, attempt, error)
        settle_failure(self._policy, message, error, attempt, self._dead_lettered)

    def _dead_lettered(self) -> None:
        self._stats.add("dead_lettered")

    def _retry_later(self, action: RetryLater[Message[Any]]) -> None:
        job = action.job
        holder = SingleAssignmentDisposable()
        with self._lock:
            if job.state is not JobState.DELAYED:
                return  # the stream ended meanwhile: left unsettled
            self._delays[job] = holder
        self._stats.add("retried")
        # Disposed by the end (or drop_delayed()) even if that came first.
        holder.disposable = self._scheduler.schedule_relative(
            action.delay, lambda *_: self._retry_due(job)
        )

    def _dropped(self, action: Dropped[Message[Any]]) -> None:
        """Left unsettled (the broker redelivers them): counted in again when they come back,
        so counted out of ``received`` now; no retry timer outlives them."""
        self._stats.add("received", -len(action.jobs))
        with self._lock:
            timers = [self._delays.pop(job) for job in action.jobs if job in self._delays]
        for timer in timers:
            timer.dispose()
