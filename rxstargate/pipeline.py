"""A long-running, supervised consumer in one call: stargate's receiver with a MessageHandler.

``topic.consume(subscription, handler, ...)`` returns a :class:`Pipeline`: a consumer piped
through :func:`~rxstargate.operators.process` into the acknowledger, restarted with backoff
when its socket fails for a reason retrying can fix, and stopped cleanly (no new messages,
in-flight work drained and settled, socket closed).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from enum import StrEnum
from types import TracebackType
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import Disposable, SerialDisposable

from rxstargate._config import checked_seconds
from rxstargate._context import ClientContext
from rxstargate._reconnect import Backoff
from rxstargate._serial import SerialObserver
from rxstargate.exceptions import (
    ClosedError,
    ConfigurationError,
    StargateError,
    StargateTimeoutError,
)
from rxstargate.models import Message
from rxstargate.operators._outcomes import MessageHandler
from rxstargate.operators._process import Handler, Run, is_coroutine_callable, make_process
from rxstargate.operators._stats import ProcessingStats
from rxstargate.sinks import acknowledger

__all__ = ["Pipeline", "PipelineState"]

log = logging.getLogger("rxstargate.pipeline")

#: A run that lasted this long before it failed counts as having worked, even with nothing
#: to deliver: the next failure is a new outage, with the whole restart policy again.
_STEADY_SECONDS = 60.0

#: The pipeline (its token) whose handler the current thread or task is running.
_HANDLING: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "rxstargate_pipeline_handling", default=None
)


class PipelineState(StrEnum):
    """Where a :class:`Pipeline` is in its life."""

    NEW = "new"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class _Gate:
    """Passes messages until closed; closing completes what follows (the work drains).

    The gate owns the source's subscription: completing what follows must not close the
    consumer's socket, whose acks are still to come. :meth:`release` closes it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._out: SerialObserver[Message[Any]] | None = None
        self._closed = False
        self._source = SerialDisposable()
        self.delivered = False  # a message went through: the stream worked

    def __call__(self, source: Observable[Message[Any]]) -> Observable[Message[Any]]:
        def subscribe(
            observer: abc.ObserverBase[Message[Any]], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            out = SerialObserver(observer)
            with self._lock:
                self._out = out
                closed = self._closed
            if closed:  # stopped before it was subscribed: nothing to take, nothing to drain
                out.on_completed()
                return Disposable()

            def on_next(message: Message[Any]) -> None:
                if not self._closed:  # after stop(): left unsettled, redelivered later
                    self.delivered = True
                    out.on_next(message)

            self._source.disposable = source.subscribe(
                on_next, out.on_error, out.on_completed, scheduler=scheduler
            )
            return Disposable()  # completion downstream leaves the socket to release()

        return Observable(subscribe)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            out = self._out
        if out is not None:
            out.on_completed()

    def release(self) -> None:
        """Close the source's socket (after the work drained). Idempotent."""
        self._source.dispose()


class _Attempt:
    """One subscription of a pipeline (the first run or a restart): gate, drain, socket."""

    def __init__(self) -> None:
        self.gate = _Gate()
        self.drained = threading.Event()  # the stream ended: completed or failed
        self.subscription = SerialDisposable()
        self.started = time.monotonic()
        self.run: Run | None = None  # process()'s state for this subscription

    def worked(self) -> bool:
        """Whether this run counts as a success: it delivered, or stayed up a long while."""
        return self.gate.delivered or time.monotonic() - self.started >= _STEADY_SECONDS

    def release(self) -> None:
        """Dispose everything and close the socket. Idempotent."""
        self.subscription.dispose()
        self.gate.release()


class Pipeline:
    """A supervised ``observe(...).pipe(process(handler)).subscribe(acknowledger())``.

    Create it with ``topic.consume(...)``; start it with :meth:`start` or ``with``. A
    pipeline runs once: it ends stopped (:meth:`stop`, or its client closed) or failed (a
    non-retriable error, ``on_failure="error"``, or the restart policy gave up), and either
    way its socket is closed. Starting it again raises :class:`~rxstargate.ClosedError`;
    make a new one with ``topic.consume(...)``.

    After a failure that retrying can fix, the consumer is subscribed again after the
    ``restart`` backoff's next delay. The backoff starts over for each outage: once a
    restarted stream delivers a message (or stays up for a minute), the next failure is
    a new outage. Closing the client ends the pipeline stopped, whether it runs (its
    stream completes) or waits to restart (the restart is cancelled at once).

    The handler is the one of :func:`~rxstargate.operators.process`, except that it may not
    return ``Leave(...)``: the acknowledger is the pipeline's last stage, so nothing would
    ever settle that message. Such a call fails with a
    :class:`~rxstargate.ConfigurationError` (never retried) and its message is settled by
    ``on_failure`` (nacked by default).

    Messages dropped unsettled when a run fails or stops (the broker redelivers them) are
    counted out of ``stats.received`` again, so ``stats.in_flight`` stays the work in hand.

    Attributes:
        stats: counters (received, processed, failed, retried, dead_lettered, in_flight, rate).
        restarts: how many times the consumer was restarted after a failure.

    Example:
        >>> with topic.consume("billing", charge, concurrency=8, key_ordered=True) as pipeline:  # doctest: +SKIP
        ...     pipeline.wait(timeout=60)
    """  # noqa: E501

    def __init__(
        self,
        source: Callable[[], Observable[Message[Any]]],
        handler: Handler,
        *,
        restart: Backoff | None = None,
        context: ClientContext | None = None,
        **process_options: Any,
    ) -> None:
        if restart is None:
            restart = Backoff(give_up_after=None)
        if not isinstance(restart, Backoff):
            raise ConfigurationError(
                f"restart must be a rxstargate.Backoff (or None), not {restart!r:.80}"
            )
        self._source = source
        self._restart = restart
        self._delays: Iterator[float] = restart.delays()
        self.stats = ProcessingStats()
        self._token = object()  # marks this pipeline's handler calls (see stop())
        self._handler = _marked(handler, self._token)
        self._process_options = process_options
        make_process(self._handler, stats=self.stats, **process_options)  # validates them now
        self._context = context  # the client's: its close() ends a pipeline waiting to restart
        self._close_key: int | None = None  # the restart timer's hook in the client's context
        self.restarts = 0
        self._lock = threading.Lock()
        self._state = PipelineState.NEW
        self._ended = threading.Event()
        self._error: Exception | None = None
        self._attempt: _Attempt | None = None
        self._timer: threading.Timer | None = None

    @property
    def state(self) -> PipelineState:
        """The current state."""
        return self._state

    @property
    def error(self) -> Exception | None:
        """What ended the pipeline, if it failed."""
        return self._error

    def start(self) -> Pipeline:
        """Subscribe and start consuming; returns self. Idempotent while running.

        Raises:
            ClosedError: the pipeline was stopped or failed; a pipeline runs only once.
        """
        with self._lock:
            state = self._state
            if state is PipelineState.NEW:
                self._state = PipelineState.RUNNING
        if state in (PipelineState.RUNNING, PipelineState.RESTARTING):
            return self
        if state is PipelineState.FAILED:
            raise ClosedError(
                f"the pipeline failed ({self._error!r}) and cannot start again:"
                " make a new one with topic.consume(...)"
            )
        if state is not PipelineState.NEW:
            raise ClosedError(
                "the pipeline was stopped and cannot start again:"
                " make a new one with topic.consume(...)"
            )
        self._run()
        return self

    def _run(self) -> None:
        attempt = _Attempt()
        sink = acknowledger(
            on_error=lambda error: self._on_failure(error, attempt),
            on_completed=lambda: self._on_completed(attempt),
        )
        operator = make_process(
            self._handler,
            stats=self.stats,
            on_run=lambda run: setattr(attempt, "run", run),
            refuse_leave=True,
            **self._process_options,
        )
        with self._lock:
            if self._state is not PipelineState.RUNNING:
                return
            self._attempt = attempt
        try:
            subscription = self._source().pipe(attempt.gate, operator).subscribe(sink)
        except Exception as exc:  # the source could not even be made (its client closed)
            self._on_failure(exc, attempt)
            return
        attempt.subscription.disposable = subscription  # disposed at once if already ended

    def _on_completed(self, attempt: _Attempt) -> None:
        """The stream completed: by stop(), or because the client was closed."""
        attempt.drained.set()
        with self._lock:
            if attempt is not self._attempt or self._state is not PipelineState.RUNNING:
                return  # a stop() in progress finishes the job
            self._state = PipelineState.STOPPED
        attempt.release()
        self._ended.set()

    def _on_failure(self, error: Exception, attempt: _Attempt) -> None:
        attempt.drained.set()
        attempt.release()  # the stream is over: its socket must not hold the subscription
        delay: float | None = None
        with self._lock:
            if attempt is not self._attempt or self._state is not PipelineState.RUNNING:
                if self._state is PipelineState.STOPPING:
                    log.warning("pipeline failed while stopping: %r", error)
                return
            if isinstance(error, ClosedError) and self._client_closed():
                self._state = PipelineState.STOPPED  # as when the client closes while it runs
                self._ended.set()
                return
            if getattr(error, "retriable", False):
                if attempt.worked():  # a new outage: the whole restart policy again
                    self._delays = self._restart.delays()
                delay = next(self._delays, None)
            if delay is None:
                self._state = PipelineState.FAILED
                self._error = error
            else:
                self._state = PipelineState.RESTARTING
                timer = threading.Timer(delay, self._restarted)
                timer.name = "rxstargate-pipeline-restart"
                timer.daemon = True
                self._timer = timer
                timer.start()
        if delay is None:
            log.error("pipeline ended: %r", error)
            self._ended.set()
        else:
            log.warning("pipeline failed (%r); restarting in %.1f s", error, delay)
            self._watch_close(timer)

    # -- the client closing while the pipeline waits to restart ------------------------------

    def _client_closed(self) -> bool:
        return self._context is not None and self._context.closed

    def _watch_close(self, timer: threading.Timer) -> None:
        """Have ``client.close()`` cancel ``timer`` and end the pipeline."""
        context = self._context
        if context is None:
            return
        try:
            key = context.on_close(self._closed_while_restarting)
        except ClosedError:  # closed already
            self._closed_while_restarting(None)
            return
        with self._lock:
            if self._timer is timer:
                self._close_key = key
                return
        context.remove_on_close(key)  # the timer fired (or was cancelled) meanwhile

    def _unwatch_close(self) -> None:
        with self._lock:
            key, self._close_key = self._close_key, None
        if key is not None and self._context is not None:
            self._context.remove_on_close(key)

    def _closed_while_restarting(self, deadline: float | None) -> None:
        """The client is closing: a pipeline waiting to restart ends stopped, at once."""
        with self._lock:
            timer = self._timer
            if self._state is not PipelineState.RESTARTING or timer is None:
                return  # running: its stream completes; ended: nothing to do
            self._state = PipelineState.STOPPED
            self._timer = None
            self._close_key = None  # close() forgets its hooks itself
        timer.cancel()
        self._ended.set()
        if deadline is not None and timer is not threading.current_thread():
            timer.join(max(0.0, deadline - time.monotonic()))

    def _restarted(self) -> None:
        self._unwatch_close()
        with self._lock:
            if self._state is not PipelineState.RESTARTING:
                return
            self._state = PipelineState.RUNNING
            self._timer = None
            self.restarts += 1
        self._run()

    def stop(self, timeout: float | timedelta = 10.0) -> None:
        """Stop taking messages, let in-flight work finish and settle, then close the socket.

        Messages that arrived after the stop, or whose work did not finish within
        ``timeout`` seconds (a number or timedelta; 0 drains nothing), are left unsettled:
        the broker redelivers them.

        Safe to call in any state and from any thread:

        - before :meth:`start`: the pipeline ends at once, without ever subscribing;
        - on a stopped or failed pipeline: makes sure everything is released, then returns;
        - while another ``stop()`` is draining: waits (up to its own ``timeout``) for that
          one to finish; it never cuts the drain short;
        - from the pipeline's own handler (say, to stop on a given message): begins the stop
          and returns at once, without waiting for the drain, which cannot end while its
          caller runs. The calling handler's message is settled as usual when the handler
          returns, as is the rest of the in-flight work; then the socket closes and
          :meth:`wait` returns. The state is ``STOPPING`` until then.

        Raises:
            ConfigurationError: for a ``timeout`` that is not seconds.
        """
        seconds = checked_seconds(timeout, "timeout", zero=True)
        from_handler = _HANDLING.get() is self._token
        with self._lock:
            state = self._state
            attempt, timer = self._attempt, self._timer
            if state is PipelineState.NEW:
                self._state = PipelineState.STOPPED
                self._ended.set()
                return
            if state in (PipelineState.RUNNING, PipelineState.RESTARTING):
                self._state = PipelineState.STOPPING
                self._timer = None
        if timer is not None:
            timer.cancel()
            self._unwatch_close()
        if state in (PipelineState.STOPPED, PipelineState.FAILED):
            if attempt is not None:
                attempt.release()  # idempotent: whatever ended it, nothing stays open
            return
        if state is PipelineState.STOPPING:  # another stop() is draining: let it finish
            if not from_handler:
                self._ended.wait(seconds)
            return
        if state is PipelineState.RESTARTING or attempt is None:
            self._finish_stop(attempt)  # nothing subscribed, nothing to drain
            return
        attempt.gate.close()
        if attempt.run is not None:  # what only waits for a retry delay is not waited for
            attempt.run.drop_delayed()
        if not from_handler:
            self._drain_and_finish(attempt, seconds)
            return
        threading.Thread(
            target=self._drain_and_finish,
            args=(attempt, seconds),
            name="rxstargate-pipeline-stop",
            daemon=True,
        ).start()

    def _drain_and_finish(self, attempt: _Attempt, seconds: float) -> None:
        if not attempt.drained.wait(seconds):
            log.warning(
                "pipeline stop: in-flight work did not finish within %s s; left unsettled",
                seconds,
            )
        self._finish_stop(attempt)

    def _finish_stop(self, attempt: _Attempt | None) -> None:
        if attempt is not None:
            attempt.release()
        with self._lock:
            self._state = PipelineState.STOPPED
        self._ended.set()

    def wait(self, timeout: float | timedelta | None = None) -> None:
        """Block until the pipeline ends (stopped, or failed for good).

        Args:
            timeout: seconds (a number or timedelta) to wait at most; None waits as long
                as it runs.

        Raises:
            StargateError: at once when the pipeline was never started, or when called from
                the pipeline's own handler (it could never end while its caller runs: call
                :meth:`stop` there, which returns at once, and wait elsewhere).
            StargateTimeoutError: when it is still running after ``timeout`` seconds.
            ConfigurationError: for a ``timeout`` that is not seconds.
            Exception: the error that ended it, if it failed.
        """
        seconds = None if timeout is None else checked_seconds(timeout, "timeout", zero=True)
        if self._state is PipelineState.NEW:
            raise StargateError(
                "wait() on a pipeline that was never started: call start() (or use with) first"
            )
        if _HANDLING.get() is self._token:
            raise StargateError(
                "wait() from the pipeline's own handler would never return (the pipeline"
                " drains its handler calls before it ends): call stop() there, which returns"
                " at once, and wait() from another thread"
            )
        if not self._ended.wait(seconds):
            raise StargateTimeoutError(f"the pipeline is still {self._state} after {seconds} s")
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Pipeline({self._state}, {self.stats!r}, restarts={self.restarts})"


# -- marking the handler's calls ---------------------------------------------------------


class _MarkedHandler(MessageHandler[Any]):
    """A MessageHandler whose calls are marked as this pipeline's."""

    def __init__(self, handler: MessageHandler[Any], token: object) -> None:
        self._handler = handler
        self._token = token

    def init(self) -> Any:
        return self._handler.init()

    def handle(self, message: Message[Any], state: Any) -> tuple[Any, Any]:
        reset = _HANDLING.set(self._token)
        try:
            return self._handler.handle(message, state)
        finally:
            _HANDLING.reset(reset)


class _MarkedAsyncHandler(_MarkedHandler):
    async def handle(self, message: Message[Any], state: Any) -> tuple[Any, Any]:  # type: ignore[override]
        reset = _HANDLING.set(self._token)
        try:
            outcome: tuple[Any, Any] = await self._handler.handle(message, state)  # type: ignore[misc]
            return outcome
        finally:
            _HANDLING.reset(reset)


def _marked(handler: Handler, token: object) -> Handler:
    """``handler``, its calls run with ``_HANDLING`` set to ``token``: stop() knows its caller.

    Async stays async (the mark lives in the handler's task), so ``process`` runs it as
    before; what ``process`` refuses is passed through for it to refuse.
    """
    if isinstance(handler, MessageHandler):
        if is_coroutine_callable(handler.handle):
            return _MarkedAsyncHandler(handler, token)
        return _MarkedHandler(handler, token)
    if not callable(handler):
        return handler
    function: Callable[[Message[Any]], Any] = handler
    if is_coroutine_callable(function):

        async def run_async(message: Message[Any]) -> Any:
            reset = _HANDLING.set(token)
            try:
                return await function(message)
            finally:
                _HANDLING.reset(reset)

        return run_async

    def run(message: Message[Any]) -> Any:
        reset = _HANDLING.set(token)
        try:
            return function(message)  # an awaitable returned here is process()'s to refuse
        finally:
            _HANDLING.reset(reset)

    return run
