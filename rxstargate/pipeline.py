"""A long-running, supervised consumer in one call: stargate's receiver with a MessageHandler.

``topic.consume(subscription, handler, ...)`` returns a :class:`Pipeline`: a consumer piped
through :func:`~rxstargate.operators.process` into the acknowledger, restarted with backoff
when its socket fails for a reason retrying can fix, and stopped cleanly (no new messages,
in-flight work drained and settled, socket closed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from types import TracebackType
from typing import Any

from reactivex import Observable

from rxstargate._config import checked_seconds
from rxstargate._context import ClientContext
from rxstargate._pipeline_handler import HANDLING, marked
from rxstargate._pipeline_run import Attempt, Restarts, RestartTimer
from rxstargate._reconnect import Backoff
from rxstargate.exceptions import (
    ClosedError,
    ConfigurationError,
    StargateError,
    StargateTimeoutError,
)
from rxstargate.models import Message
from rxstargate.operators._handlers import Handler
from rxstargate.operators._process import checked_settings, operator_of
from rxstargate.operators._stats import ProcessingStats
from rxstargate.sinks import acknowledger

__all__ = ["Pipeline", "PipelineState"]

log = logging.getLogger("rxstargate.pipeline")


class PipelineState(StrEnum):
    """Where a :class:`Pipeline` is in its life."""

    NEW = "new"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


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

    Messages left unsettled when a run fails or stops, or whose calls had not started when
    the source completed by itself (its client closed) or its socket dropped (they could not
    be acked), are redelivered by the broker and counted out of ``stats.received`` again, so
    ``stats.in_flight`` stays the work in hand. ``concurrency`` may not exceed the source's
    ``max_in_flight`` (``consume`` passes its own): no more messages are ever in hand.

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
        max_in_flight: int | None = None,
        **process_options: Any,
    ) -> None:
        self._restarts = Restarts(restart)
        self._source = source
        self.stats = ProcessingStats()
        self._token = object()  # marks this pipeline's handler calls (see stop())
        _check_bound(process_options.get("concurrency", 1), max_in_flight)
        self._settings = checked_settings(  # validated now, before anything runs
            marked(handler, self._token), stats=self.stats, refuse_leave=True, **process_options
        )
        self._context = context  # the client's: its close() ends a pipeline waiting to restart
        self.restarts = 0
        self._lock = threading.Lock()
        self._state = PipelineState.NEW
        self._ended = threading.Event()
        self._error: Exception | None = None
        self._attempt: Attempt | None = None
        self._pending_restart: RestartTimer | None = None

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
        attempt = Attempt()
        sink = acknowledger(
            on_error=lambda error: self._on_failure(error, attempt),
            on_completed=lambda: self._on_completed(attempt),
        )
        operator = operator_of(self._settings, on_run=lambda run: setattr(attempt, "run", run))
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

    def _on_completed(self, attempt: Attempt) -> None:
        """The stream completed: by stop(), or because the client was closed."""
        attempt.drained.set()
        with self._lock:
            if attempt is not self._attempt or self._state is not PipelineState.RUNNING:
                return  # a stop() in progress finishes the job
            self._state = PipelineState.STOPPED
        attempt.release()
        self._ended.set()

    def _on_failure(self, error: Exception, attempt: Attempt) -> None:
        attempt.drained.set()
        attempt.release()  # the stream is over: its socket must not hold the subscription
        restart: RestartTimer | None = None
        with self._lock:
            if attempt is not self._attempt or self._state is not PipelineState.RUNNING:
                if self._state is PipelineState.STOPPING:
                    log.warning("pipeline failed while stopping: %r", error)
                return
            if (
                isinstance(error, ClosedError)
                and self._context is not None
                and self._context.closed
            ):
                self._state = PipelineState.STOPPED  # as when the client closes while it runs
                self._ended.set()
                return
            delay = self._restarts.next_delay(error, attempt)
            if delay is None:
                self._state = PipelineState.FAILED
                self._error = error
            else:
                self._state = PipelineState.RESTARTING
                restart = RestartTimer(
                    delay, self._restarted, self._closed_while_restarting, self._context
                )
                self._pending_restart = restart
        if restart is None:
            log.error("pipeline ended: %r", error)
            self._ended.set()
        else:
            log.warning("pipeline failed (%r); restarting in %.1f s", error, delay)
            restart.start()

    def _closed_while_restarting(self, restart: RestartTimer) -> bool:
        """The client is closing: a pipeline waiting to restart ends stopped, at once."""
        with self._lock:
            if self._state is not PipelineState.RESTARTING or self._pending_restart is not restart:
                return False  # running: its stream completes; ended: nothing to do
            self._state = PipelineState.STOPPED
            self._pending_restart = None
        self._ended.set()
        return True

    def _restarted(self, restart: RestartTimer) -> None:
        with self._lock:
            if self._state is not PipelineState.RESTARTING or self._pending_restart is not restart:
                return
            self._state = PipelineState.RUNNING
            self._pending_restart = None
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
        from_handler = HANDLING.get() is self._token
        with self._lock:
            state, attempt, restart = self._state, self._attempt, self._pending_restart
            if state is PipelineState.NEW:
                self._state = PipelineState.STOPPED
            elif state in (PipelineState.RUNNING, PipelineState.RESTARTING):
                self._state = PipelineState.STOPPING
                self._pending_restart = None
        if state is PipelineState.NEW:
            self._ended.set()
            return
        if restart is not None:
            restart.cancel()
        if state in (PipelineState.STOPPED, PipelineState.FAILED):
            if attempt is not None:
                attempt.release()  # idempotent: whatever ended it, nothing stays open
        elif state is PipelineState.STOPPING:  # another stop() is draining: let it finish
            if not from_handler:
                self._ended.wait(seconds)
        elif state is PipelineState.RESTARTING or attempt is None:
            self._finish_stop(attempt)  # nothing subscribed, nothing to drain
        else:
            self._drain(attempt, seconds, from_handler)

    def _drain(self, attempt: Attempt, seconds: float, from_handler: bool) -> None:
        """Stop taking messages and let the work in hand finish (here, or on a thread of its
        own when called from the handler, whose call the drain waits for)."""
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

    def _drain_and_finish(self, attempt: Attempt, seconds: float) -> None:
        if not attempt.drained.wait(seconds):
            log.warning("pipeline stop: work did not finish within %s s; left unsettled", seconds)
        self._finish_stop(attempt)

    def _finish_stop(self, attempt: Attempt | None) -> None:
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
        if HANDLING.get() is self._token:
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


def _check_bound(concurrency: Any, max_in_flight: int | None) -> None:
    """Refuse more calls at once than messages can be in hand (other bad values are
    ``process``'s to refuse)."""
    if (
        max_in_flight is not None
        and isinstance(concurrency, int)
        and not isinstance(concurrency, bool)
        and concurrency > max_in_flight
    ):
        raise ConfigurationError(
            f"concurrency ({concurrency}) must be at most max_in_flight ({max_in_flight}):"
            " no more messages than that are ever in hand at once, so the other calls (and"
            " their threads) could never run"
        )
