"""``process``: run a handler over messages with bounded concurrency, per-key order and retries."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import itertools
import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SingleAssignmentDisposable
from reactivex.scheduler import TimeoutScheduler

from rxstargate._config import checked_seconds
from rxstargate._serial import SerialObserver
from rxstargate.exceptions import (
    AckError,
    ConfigurationError,
    SchemaError,
    StargateTimeoutError,
)
from rxstargate.models import Message
from rxstargate.operators._failure import FailurePolicy, settle_failure, validate_policy
from rxstargate.operators._outcomes import Leave, MessageHandler, Nack, Processed
from rxstargate.operators._retry import Retry
from rxstargate.operators._stats import ProcessingStats
from rxstargate.streams import Stream

__all__ = ["process"]

log = logging.getLogger("rxstargate.operators")

Handler = Callable[[Message[Any]], Any] | MessageHandler[Any]


def process(
    handler: Handler,
    *,
    concurrency: int = 1,
    key_ordered: bool = False,
    timeout: float | timedelta | None = None,
    retry: Retry | None = None,
    on_failure: FailurePolicy = "nack",
    scheduler: abc.SchedulerBase | None = None,
    stats: ProcessingStats | None = None,
) -> Callable[[Observable[Message[Any]]], Stream[Processed[Any]]]:
    """Run ``handler(message)`` for each message, at most ``concurrency`` calls at once.

    For each message whose handling succeeded, emits a :class:`Processed` item (the message
    and the handler's result) that :func:`~rxstargate.acknowledger` acks, so nothing is acked
    before its work is done. The handler may return a plain result (ack it), ``Leave(result)``
    (emit it unsettled, for a later stage) or ``Nack()`` (nack it now, emit nothing). It may be
    a function, a coroutine function (or any callable whose ``__call__`` is one, or a
    ``functools.partial`` of one), or a :class:`MessageHandler` (state per worker).
    Coroutine handlers run as tasks on an event loop of the operator's own. A plain handler
    that returns an awaitable anyway (a ``lambda`` around an ``async def``) is a mistake that
    would otherwise ack messages whose work never ran: such a call fails with a ``TypeError``
    (never retried; the coroutine is closed unrun) and its message is settled by
    ``on_failure`` (nacked by default). Make the handler itself ``async def`` instead.

    A message whose payload failed the stream's schema (``observe(schema_failures="deliver")``)
    is settled by ``on_failure`` at once, without calling the handler.

    A handler that raises (or runs past ``timeout`` seconds) is retried in place by ``retry``
    (delays on ``scheduler``, never a sleep); after its last attempt the message is settled by
    ``on_failure``: ``"nack"`` (redelivered by the broker, counting towards
    ``max_redeliver_count``), :func:`dead_letter` (a copy to a dead-letter topic, then acked),
    or ``"error"`` (the stream ends with the error). The stream goes on otherwise.

    With ``key_ordered=True`` messages of one key are handled one at a time, in arrival order,
    while different keys run in parallel (messages without a key share one lane). A threaded
    call that runs past ``timeout`` cannot be stopped: its message is settled at the timeout,
    but it keeps its concurrency slot *and its key* until it returns, so the next message of
    that key (or its retry) never overlaps with it. The queue before the workers holds at most
    what the stream's credit allows (``max_in_flight``).

    An exception raised by the downstream observer (your ``on_next``) ends the stream: it
    reaches that observer's ``on_error`` once, whichever thread emitted, and nothing more is
    emitted.

    Marble::

        messages:  --a--b--c-------|
        process:   ----A-----C--B--|     (B took longer; with key_ordered, per key in order)

    Args:
        handler: the work for one message.
        concurrency: the most calls at once (threads for functions, tasks for coroutines).
        key_ordered: keep each key's order while running keys in parallel.
        timeout: seconds (or a timedelta) a call may take before it counts as failed.
        retry: how to retry a failed call; None fails at once.
        on_failure: what to do with a message after its last failed attempt.
        scheduler: the Rx scheduler for retry delays and timeouts (a TestScheduler in tests).
        stats: counters to update (received, processed, failed, retried, dead_lettered).
            A message the stream drops unsettled when it ends (disposed, or failed, before
            that message's work finished; the broker redelivers it) is counted out of
            ``received`` again, so ``in_flight`` goes back to 0.

    Disposing the subscription cancels pending retry delays: a message that waits for
    its retry is left unsettled (the broker redelivers it), and no timer outlives it.

    Raises:
        ConfigurationError: for a bad argument (before anything runs).

    Example:
        >>> stream.pipe(process(charge, concurrency=8, key_ordered=True,  # doctest: +SKIP
        ...     retry=Retry(attempts=3))).subscribe(rs.acknowledger())
    """
    return make_process(
        handler,
        concurrency=concurrency,
        key_ordered=key_ordered,
        timeout=timeout,
        retry=retry,
        on_failure=on_failure,
        scheduler=scheduler,
        stats=stats,
    )


def make_process(
    handler: Handler,
    *,
    concurrency: int = 1,
    key_ordered: bool = False,
    timeout: float | timedelta | None = None,
    retry: Retry | None = None,
    on_failure: FailurePolicy = "nack",
    scheduler: abc.SchedulerBase | None = None,
    stats: ProcessingStats | None = None,
    on_run: Callable[[Run], None] | None = None,
    refuse_leave: bool = False,
) -> Callable[[Observable[Message[Any]]], Stream[Processed[Any]]]:
    """:func:`process`, for the Pipeline: ``on_run`` gets each subscription's :class:`Run`
    (to drop its pending retries when stopping); ``refuse_leave`` fails a ``Leave`` result
    (nothing after the Pipeline's acknowledger would ever settle it)."""
    if not (callable(handler) or isinstance(handler, MessageHandler)):
        raise ConfigurationError(f"handler must be callable or a MessageHandler, not {handler!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency must be a positive int, not {concurrency!r}")
    if not isinstance(key_ordered, bool):
        raise ConfigurationError(f"key_ordered must be True or False, not {key_ordered!r}")
    seconds = None if timeout is None else checked_seconds(timeout, "timeout")
    if retry is not None and not isinstance(retry, Retry):
        raise ConfigurationError(
            f"retry must be a rxstargate.operators.Retry or None, not {retry!r}"
        )
    policy = validate_policy(on_failure)
    if scheduler is not None and not isinstance(scheduler, abc.SchedulerBase):
        raise ConfigurationError(f"scheduler must be an Rx scheduler or None, not {scheduler!r}")
    if stats is not None and not isinstance(stats, ProcessingStats):
        raise ConfigurationError(f"stats must be a ProcessingStats or None, not {stats!r}")

    def operator(source: Observable[Message[Any]]) -> Stream[Processed[Any]]:
        def subscribe(
            observer: abc.ObserverBase[Processed[Any]],
            subscribe_scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            run = _Run(
                handler,
                concurrency,
                key_ordered,
                seconds,
                retry,
                policy,
                scheduler or TimeoutScheduler.singleton(),
                stats or ProcessingStats(),
                observer,
                refuse_leave=refuse_leave,
            )
            if on_run is not None:
                on_run(run)
            upstream = source.subscribe(
                run.on_next, run.on_error, run.on_completed, scheduler=subscribe_scheduler
            )
            return CompositeDisposable(upstream, Disposable(run.dispose))

        return Stream(subscribe)

    return operator


class _NotAwaitedError(TypeError):
    """A plain handler returned an awaitable: its work never ran (retrying cannot help)."""


class LeaveRefusedError(ConfigurationError):
    """A consume() handler returned ``Leave``: no later stage would settle it (never retried)."""


def is_coroutine_callable(function: Any) -> bool:
    """True for a coroutine function, a partial of one, or an object whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(function):
        return True
    if inspect.isfunction(function) or inspect.ismethod(function) or inspect.isclass(function):
        return False
    return inspect.iscoroutinefunction(getattr(function, "__call__", None))  # noqa: B004


def _not_awaited(result: Any, message: Message[Any]) -> _NotAwaitedError:
    """The error for a plain handler's awaitable ``result``, closing it unrun if it can."""
    if inspect.iscoroutine(result):
        result.close()  # never run: no "coroutine was never awaited" warning either
    return _NotAwaitedError(
        f"the handler returned {type(result).__name__} {result!r:.80} for message"
        f" {message.message_id} instead of a result: it is not an async def function, so"
        " process() did not await it and its work never ran; make the handler itself"
        " async def (or an object whose __call__ is async def)"
    )


class _Job:
    """One message on its way through the handler, across its attempts."""

    __slots__ = ("after_call", "attempt", "future", "handled", "key", "message", "running", "timer")

    def __init__(self, key: Hashable, message: Message[Any]) -> None:
        self.key = key
        self.message = message
        self.attempt = 0  # the attempt running or last run, from 1
        self.handled = 0  # the last attempt whose outcome was decided (a late one is ignored)
        self.timer: abc.DisposableBase | None = None
        self.future: Future[Any] | None = None  # a coroutine's, to cancel it at its timeout
        self.running = 0  # calls of this job that have not returned yet (under the run's lock)
        # What waits for that call to return: freeing the key, or starting the retry.
        self.after_call: Callable[[], None] | None = None


class _Run:
    """The state of one subscription to ``process``."""

    def __init__(
        self,
        handler: Handler,
        concurrency: int,
        key_ordered: bool,
        timeout: float | None,
        retry: Retry | None,
        policy: FailurePolicy,
        scheduler: abc.SchedulerBase,
        stats: ProcessingStats,
        observer: abc.ObserverBase[Processed[Any]],
        *,
        refuse_leave: bool = False,
    ) -> None:
        self._handler = handler
        self._refuse_leave = refuse_leave
        self._stateful = isinstance(handler, MessageHandler)
        function = handler.handle if isinstance(handler, MessageHandler) else handler
        self._is_async = is_coroutine_callable(function)
        self._concurrency = concurrency
        self._key_ordered = key_ordered
        self._timeout = timeout
        self._retry = retry
        self._policy = policy
        self._scheduler = scheduler
        self._stats = stats
        # An exception the observer raises ends the stream there: stop calling the handler.
        self._observer = SerialObserver(observer, on_raised=self._stop)
        self._inline = concurrency == 1 and not self._is_async
        # The common case needs none of the scheduling: one plain call at a time, no timers.
        self._direct = self._inline and not self._stateful and timeout is None and retry is None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._queues: dict[Hashable, collections.deque[Message[Any]]] = {}
        self._ready: collections.deque[Hashable] = collections.deque()
        self._busy: set[Hashable] = set()
        self._retries: collections.deque[_Job] = collections.deque()
        self._running = 0
        self._lanes = list(range(concurrency - 1, -1, -1))
        self._states: dict[int, Any] = {}
        self._unique = itertools.count()
        self._upstream_done = False
        self._stopped = False
        self._open = 0  # messages taken and not counted out yet (under the lock)
        self._delayed: dict[_Job, SingleAssignmentDisposable] = {}  # waiting for a retry delay
        self._draining = False  # drop_delayed() was called: retries are not delayed any more
        self._pool: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None

    # -- upstream --------------------------------------------------------------------------

    def on_next(self, message: Message[Any]) -> None:
        if not self._take_in():
            return
        if getattr(message, "schema_error", None) is not None:
            # A payload that does not match the schema: retrying cannot help.
            error = SchemaError(
                f"message {message.message_id} does not match the schema: {message.schema_error}",
                message_id=str(message.message_id),
            )
            self._failed(message, error, 1)
            return
        if self._direct and type(message) is Message:
            self._call_direct(message)
            return
        if not isinstance(message, Message):
            with self._lock:
                self._open -= 1  # not a message: nothing to count
            self._stats.add("received", -1)
            self._fail_stream(
                ConfigurationError(
                    f"process() takes Messages, not {type(message).__name__}: put it first,"
                    " right after observe()"
                )
            )
            return
        key: Hashable = ("key", message.key) if self._key_ordered else ("one", next(self._unique))
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = collections.deque()
                if key not in self._busy:
                    self._ready.append(key)
            queue.append(message)
        self._dispatch()

    def _call_direct(self, message: Message[Any]) -> None:
        """Concurrency 1, a plain handler, no timeout or retry: call it right here."""
        try:
            result = self._handler(message)  # type: ignore[operator]
        except Exception as exc:
            self._failed(message, exc, 1)
            return
        if inspect.isawaitable(result):
            self._failed(message, _not_awaited(result, message), 1)
            return
        if self._refuse_leave and isinstance(result, Leave):
            self._failed(message, _leave_refused(message), 1)
            return
        if not self._count_out("processed"):
            return  # disposed meanwhile: left unsettled, as at the end of any stream
        if isinstance(result, Nack):
            with contextlib.suppress(AckError):
                message.nack()
        elif isinstance(result, Leave):
            self._observer.on_next(Processed(message, result.result, settle=False))
        else:
            self._observer.on_next(Processed(message, result))

    def on_error(self, error: Exception) -> None:
        self._stop()
        self._observer.on_error(error)

    def on_completed(self) -> None:
        with self._lock:
            self._upstream_done = True
        self._maybe_complete()

    def dispose(self) -> None:
        self._stop()

    def drop_delayed(self) -> None:
        """The stream is stopping: leave the messages that only wait for a retry delay
        unsettled (the broker redelivers them) instead of waiting for it, and do so for any
        retry from now on. With ``key_ordered`` the messages queued behind one of them (its
        key) are left too, so that none of them is settled before it."""
        with self._lock:
            if self._stopped:
                return
            self._draining = True
            delayed = list(self._delayed.items())
            self._delayed.clear()
            dropped = sum(self._drop(job) for job, _ in delayed)
        for _, holder in delayed:
            holder.dispose()
        if dropped:
            self._stats.add("received", -dropped)
        self._maybe_complete()

    def _drop(self, job: _Job) -> int:
        """Under the lock: forget ``job`` (and what waits behind its key); how many messages."""
        self._busy.discard(job.key)
        queue = self._queues.pop(job.key, None)
        if queue is not None:
            with contextlib.suppress(ValueError):
                self._ready.remove(job.key)
        dropped = 1 + (len(queue) if queue else 0)
        self._open -= dropped
        return dropped

    # -- counting --------------------------------------------------------------------------

    def _take_in(self) -> bool:
        """Count a message in, unless the stream ended (then it is left alone)."""
        with self._lock:
            if self._stopped:
                return False
            self._open += 1
        self._stats.add("received")
        return True

    def _count_out(self, name: str) -> bool:
        """Count a message out as ``name``; False when the end already counted it out."""
        with self._lock:
            if self._stopped:
                return False
            self._open -= 1
        self._stats.add(name)
        return True

    # -- scheduling ------------------------------------------------------------------------

    def _take(self) -> tuple[_Job, int] | None:
        """Under the lock: the next job to start and its lane, or None."""
        if self._stopped or self._running >= self._concurrency:
            return None
        if self._retries:
            job = self._retries.popleft()
        elif self._ready:
            key = self._ready.popleft()
            queue = self._queues[key]
            job = _Job(key, queue.popleft())
            if not queue:
                del self._queues[key]
            self._busy.add(key)
        else:
            return None
        self._running += 1
        return job, self._lanes.pop()

    def _dispatch(self) -> None:
        """Start what may start. Re-entered from a call this thread runs, it leaves the work to
        the loop already running here, so inline calls never nest."""
        local = self._local
        if getattr(local, "active", False):
            return
        local.active = True
        try:
            while True:
                with self._lock:
                    taken = self._take()
                if taken is None:
                    return
                job, lane = taken
                job.attempt += 1
                if self._inline:
                    self._call_sync(job, lane, job.attempt)
                elif self._is_async:
                    self._call_async(job, lane, job.attempt)
                else:
                    self._executor().submit(self._call_sync, job, lane, job.attempt)
        finally:
            local.active = False

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self._concurrency, thread_name_prefix="rxstargate-process"
                )
            return self._pool

    # -- calling ---------------------------------------------------------------------------

    def _arm_timer(self, job: _Job, attempt: int) -> None:
        if self._timeout is None:
            return
        job.timer = self._scheduler.schedule_relative(
            self._timeout, lambda *_: self._timed_out(job, attempt)
        )

    def _call_sync(self, job: _Job, lane: int, attempt: int) -> None:
        with self._lock:
            job.running += 1
        self._arm_timer(job, attempt)
        try:
            if self._stateful:
                handler: Any = self._handler
                state = self._states[lane] if lane in self._states else handler.init()
                returned = handler.handle(job.message, state)
                if inspect.isawaitable(returned):
                    raise _not_awaited(returned, job.message)
                result, self._states[lane] = returned
            else:
                result = self._handler(job.message)  # type: ignore[operator]
            if inspect.isawaitable(result):
                raise _not_awaited(result, job.message)
        except Exception as exc:
            self._finished(job, lane, attempt, error=exc)
        else:
            self._finished(job, lane, attempt, result=result)
        if not self._inline:
            self._dispatch()

    def _call_async(self, job: _Job, lane: int, attempt: int) -> None:
        loop = self._event_loop()
        with self._lock:
            job.running += 1
        self._arm_timer(job, attempt)

        async def run() -> Any:
            if self._stateful:
                handler: Any = self._handler
                state = self._states[lane] if lane in self._states else handler.init()
                result, self._states[lane] = await handler.handle(job.message, state)
                return result
            return await self._handler(job.message)  # type: ignore[operator]

        def done(future: Future[Any]) -> None:
            if future.cancelled():
                self._finished(job, lane, attempt, error=StargateTimeoutError("cancelled"))
            elif future.exception() is not None:
                error = future.exception()
                assert isinstance(error, Exception)
                self._finished(job, lane, attempt, error=error)
            else:
                self._finished(job, lane, attempt, result=future.result())
            self._dispatch()

        future = asyncio.run_coroutine_threadsafe(run(), loop)
        job.future = future
        future.add_done_callback(done)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._loop = loop
                self._loop_thread = threading.Thread(
                    target=_run_loop, args=(loop,), name="rxstargate-process-loop", daemon=True
                )
                self._loop_thread.start()
            return self._loop

    def _timed_out(self, job: _Job, attempt: int) -> None:
        error = StargateTimeoutError(
            f"handling message {job.message.message_id} took longer than {self._timeout} s"
        )
        self._outcome(job, attempt, error=error)
        future = job.future
        if future is not None and job.attempt == attempt:
            future.cancel()  # a coroutine can be stopped; a thread cannot

    # -- outcomes --------------------------------------------------------------------------

    def _finished(
        self,
        job: _Job,
        lane: int,
        attempt: int,
        *,
        result: Any = None,
        error: BaseException | None = None,
    ) -> None:
        """A call returned (or raised): free its slot, then decide what the outcome means."""
        if job.timer is not None:
            job.timer.dispose()
        with self._lock:
            self._running -= 1
            self._lanes.append(lane)
            job.running -= 1
            after_call = None
            if not job.running:
                after_call, job.after_call = job.after_call, None
        self._outcome(job, attempt, result=result, error=error)
        if after_call is not None:
            after_call()  # the key (or the retry) waited for this timed-out call to return

    def _outcome(
        self, job: _Job, attempt: int, *, result: Any = None, error: BaseException | None = None
    ) -> None:
        if error is None and self._refuse_leave and isinstance(result, Leave):
            error = _leave_refused(job.message)
        with self._lock:
            if attempt <= job.handled or self._stopped:
                return  # a late result of an attempt that timed out, or after the end
            job.handled = attempt
            retry = self._retry
            retrying = (
                error is not None
                and retry is not None
                and not isinstance(error, _NotAwaitedError | LeaveRefusedError)
                and retry.retries(error, attempt)
            )
        if retrying:
            self._delay_retry(job, attempt)
            return
        if error is not None:
            self._failed(job.message, error, attempt)
        elif isinstance(result, Nack):
            if not self._count_out("processed"):
                return
            with contextlib.suppress(AckError):
                job.message.nack()
        else:
            if not self._count_out("processed"):
                return
            if isinstance(result, Leave):
                item = Processed(job.message, result.result, settle=False, attempts=attempt)
            else:
                item = Processed(job.message, result, attempts=attempt)
            self._observer.on_next(item)
        with self._lock:
            if job.running:  # timed out, still running: the key stays busy until it returns
                job.after_call = lambda: self._release(job.key)
                return
        self._release(job.key)

    def _delay_retry(self, job: _Job, attempt: int) -> None:
        """Retry ``job`` after its delay; when stopping, leave it for redelivery instead."""
        assert self._retry is not None
        holder = SingleAssignmentDisposable()
        with self._lock:
            if self._stopped:
                return
            dropped = self._drop(job) if self._draining else 0
            if not dropped:
                self._delayed[job] = holder
        if dropped:
            self._stats.add("received", -dropped)
            self._maybe_complete()
            return
        self._stats.add("retried")
        # Disposed by the end (or drop_delayed()) even if that came first.
        holder.disposable = self._scheduler.schedule_relative(
            self._retry.delay(attempt), lambda *_: self._requeue(job)
        )

    def _failed(self, message: Message[Any], error: BaseException, attempt: int) -> None:
        if not self._count_out("failed"):
            return  # the stream ended meanwhile: left unsettled
        if self._policy == "error":
            self._fail_stream(error if isinstance(error, Exception) else RuntimeError(error))
            return
        log.info("message %s failed after %d attempt(s): %r", message.message_id, attempt, error)
        settle_failure(
            self._policy, message, error, attempt, lambda: self._stats.add("dead_lettered")
        )

    def _requeue(self, job: _Job) -> None:
        with self._lock:
            self._delayed.pop(job, None)
            if self._stopped:
                return
            if self._key_ordered and job.running:
                # The attempt that timed out still runs: its key stays busy until it returns.
                job.after_call = lambda: self._requeue(job)
                return
            self._retries.append(job)
        self._dispatch()

    def _release(self, key: Hashable) -> None:
        with self._lock:
            self._busy.discard(key)
            if key in self._queues:
                self._ready.append(key)
        self._dispatch()
        self._maybe_complete()

    def _maybe_complete(self) -> None:
        with self._lock:
            idle = (
                self._upstream_done
                and not self._queues
                and not self._busy
                and not self._retries
                and self._running == 0
            )
        if idle and not self._stopped:
            self._stop()
            self._observer.on_completed()

    # -- ending ----------------------------------------------------------------------------

    def _fail_stream(self, error: Exception) -> None:
        self._stop()
        self._observer.on_error(error)

    def _stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            pool, loop = self._pool, self._loop
            dropped, self._open = self._open, 0
            delayed = list(self._delayed.values())
            self._delayed.clear()
        for holder in delayed:
            holder.dispose()  # no retry timer outlives the stream
        if dropped:
            self._stats.add("received", -dropped)  # left unsettled: counted in again later
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)


Run = _Run


def _leave_refused(message: Message[Any]) -> LeaveRefusedError:
    return LeaveRefusedError(
        f"the handler returned Leave(...) for message {message.message_id}, but in consume()"
        " nothing after the handler would ever settle it: return the result itself (acked)"
        " or Nack(), or use observe().pipe(process(...), ...) with a stage that settles it"
    )


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Run ``loop`` until stopped, then cancel what is left and close it."""
    try:
        loop.run_forever()
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    finally:
        loop.close()
