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
from enum import StrEnum
from types import TracebackType
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import Disposable, SerialDisposable

from rxstargate._reconnect import Backoff
from rxstargate._serial import SerialObserver
from rxstargate.exceptions import StargateTimeoutError
from rxstargate.models import Message
from rxstargate.operators._process import Handler, process
from rxstargate.operators._stats import ProcessingStats
from rxstargate.sinks import Acknowledger, acknowledger

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


class _Gate:
    """Passes messages until closed; closing completes what follows (the work drains).

    The gate owns the source's subscription: completing what follows must not close the
    consumer's socket, whose acks are still to come. :meth:`release` closes it.
    """

    def __init__(self) -> None:
        self._out: SerialObserver[Message[Any]] | None = None
        self._closed = False
        self._source = SerialDisposable()

    def __call__(self, source: Observable[Message[Any]]) -> Observable[Message[Any]]:
        def subscribe(
            observer: abc.ObserverBase[Message[Any]], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            out = SerialObserver(observer)
            self._out = out

            def on_next(message: Message[Any]) -> None:
                if not self._closed:  # after stop(): left unsettled, redelivered later
                    out.on_next(message)

            self._source.disposable = source.subscribe(
                on_next, out.on_error, out.on_completed, scheduler=scheduler
            )
            return Disposable()  # completion downstream leaves the socket to release()

        return Observable(subscribe)

    def close(self) -> None:
        self._closed = True
        if self._out is not None:
            self._out.on_completed()

    def release(self) -> None:
        """Close the source's socket (after the work drained)."""
        self._source.dispose()


class Pipeline:
    """A supervised ``observe(...).pipe(process(handler)).subscribe(acknowledger())``.

    Create it with ``topic.consume(...)``; start it with :meth:`start` or ``with``.

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
        restart: Backoff,
        **process_options: Any,
    ) -> None:
        self._source = source
        self._delays = restart.delays()
        self.stats = ProcessingStats()
        self._operator = process(handler, stats=self.stats, **process_options)
        self.restarts = 0
        self._lock = threading.Lock()
        self._state = PipelineState.NEW
        self._ended = threading.Event()
        self._error: Exception | None = None
        self._gate: _Gate | None = None
        self._subscription: abc.DisposableBase = Disposable()
        self._drained = threading.Event()
        self._sink: Acknowledger | None = None
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
        """Subscribe and start consuming; returns self. Idempotent while running."""
        with self._lock:
            if self._state is not PipelineState.NEW:
                return self
            self._state = PipelineState.RUNNING
        self._run()
        return self

    def _run(self) -> None:
        gate = _Gate()
        drained = threading.Event()
        sink = acknowledger(
            on_error=lambda error: self._on_failure(error, drained),
            on_completed=lambda: self._on_completed(drained),
        )
        with self._lock:
            if self._state is not PipelineState.RUNNING:
                return
            self._gate, self._drained, self._sink = gate, drained, sink
        self._subscription = self._source().pipe(gate, self._operator).subscribe(sink)

    def _on_completed(self, drained: threading.Event) -> None:
        """The stream completed: by stop(), or because the client was closed."""
        drained.set()
        with self._lock:
            if self._state is not PipelineState.RUNNING:
                return
            self._state = PipelineState.STOPPED
            gate = self._gate
        if gate is not None:
            gate.release()
        self._ended.set()

    def _on_failure(self, error: Exception, drained: threading.Event) -> None:
        drained.set()
        delay = next(self._delays, None) if getattr(error, "retriable", False) else None
        with self._lock:
            if self._state is not PipelineState.RUNNING:
                return
            self._state = PipelineState.FAILED if delay is None else PipelineState.RESTARTING
            if delay is None:
                self._error = error
        if delay is None:
            log.error("pipeline ended: %r", error)
            self._ended.set()
            return
        log.warning("pipeline failed (%r); restarting in %.1f s", error, delay)
        self._timer = threading.Timer(delay, self._restarted)
        self._timer.name = "rxstargate-pipeline-restart"
        self._timer.daemon = True
        self._timer.start()

    def _restarted(self) -> None:
        with self._lock:
            if self._state is not PipelineState.RESTARTING:
                return
            self._state = PipelineState.RUNNING
            self.restarts += 1
            gate = self._gate
        self._subscription.dispose()
        if gate is not None:
            gate.release()
        self._run()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking messages, let in-flight work finish and settle, then close the socket.

        Messages that arrived after the stop, or whose work did not finish within
        ``timeout`` seconds, are left unsettled: the broker redelivers them.
        """
        with self._lock:
            if self._state in (PipelineState.STOPPED, PipelineState.FAILED):
                return
            was = self._state
            self._state = PipelineState.STOPPING
            gate, drained = self._gate, self._drained
        if self._timer is not None:
            self._timer.cancel()
        if was is PipelineState.RUNNING and gate is not None:
            gate.close()
            drained.wait(timeout)
        self._subscription.dispose()
        if gate is not None:
            gate.release()
        with self._lock:
            self._state = PipelineState.STOPPED
        self._ended.set()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the pipeline ends (stopped, or failed for good).

        Raises:
            StargateTimeoutError: when it is still running after ``timeout`` seconds.
            Exception: the error that ended it, if it failed.
        """
        if not self._ended.wait(timeout):
            raise StargateTimeoutError(f"the pipeline is still {self._state} after {timeout} s")
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
