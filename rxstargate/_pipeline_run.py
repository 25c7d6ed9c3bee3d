"""The parts of a Pipeline's life: one subscription (gate, drain, socket) and a pending restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import Disposable, SerialDisposable

from rxstargate._context import ClientContext
from rxstargate._reconnect import Backoff
from rxstargate._serial import SerialObserver
from rxstargate.exceptions import ClosedError, ConfigurationError
from rxstargate.models import Message
from rxstargate.operators._direct import DirectRun
from rxstargate.operators._run import Run

__all__ = ["STEADY_SECONDS", "Attempt", "Gate", "RestartTimer", "Restarts"]

#: A run that lasted this long before it failed counts as having worked, even with nothing
#: to deliver: the next failure is a new outage, with the whole restart policy again.
STEADY_SECONDS = 60.0

#: The clock of :meth:`Attempt.worked` (tests replace it to make a run steady at once).
now: Callable[[], float] = time.monotonic


class Gate:
    """Passes messages until closed; closing completes what follows (the work drains).

    The gate owns the source's subscription: completing what follows must not close the
    consumer's socket, whose acks are still to come. :meth:`release` closes it. When the
    source completes by itself (its client closed, and with it the socket), ``on_source_end``
    runs first: what waits for a call could not be acked any more.
    """

    def __init__(self, on_source_end: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._on_source_end = on_source_end
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

            def on_completed() -> None:
                self._on_source_end()
                out.on_completed()

            self._source.disposable = source.subscribe(
                on_next, out.on_error, on_completed, scheduler=scheduler
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


class Attempt:
    """One subscription of a pipeline (the first run or a restart): gate, drain, socket."""

    def __init__(self) -> None:
        self.gate = Gate(self._source_ended)
        self.drained = threading.Event()  # the stream ended: completed or failed
        self.subscription = SerialDisposable()
        self.started = now()
        self.run: Run | DirectRun | None = None  # process()'s state for this subscription

    def worked(self) -> bool:
        """Whether this run counts as a success: it delivered, or stayed up a long while."""
        return self.gate.delivered or now() - self.started >= STEADY_SECONDS

    def release(self) -> None:
        """Dispose everything and close the socket. Idempotent."""
        self.subscription.dispose()
        self.gate.release()

    def _source_ended(self) -> None:
        if self.run is not None:
            self.run.drop_waiting()


class Restarts:
    """A pipeline's restart policy: its ``restart`` backoff, started over for each outage."""

    def __init__(self, backoff: Backoff | None) -> None:
        if backoff is None:
            backoff = Backoff(give_up_after=None)
        if not isinstance(backoff, Backoff):
            raise ConfigurationError(
                f"restart must be a rxstargate.Backoff (or None), not {backoff!r:.80}"
            )
        self._backoff = backoff
        self._delays = backoff.delays()

    def next_delay(self, error: Exception, attempt: Attempt) -> float | None:
        """Seconds to wait before restarting after ``error`` ended ``attempt``; None when
        retrying cannot fix it or the policy gave up."""
        if not getattr(error, "retriable", False):
            return None
        if attempt.worked():  # a new outage: the whole restart policy again
            self._delays = self._backoff.delays()
        return next(self._delays, None)


class RestartTimer:
    """The wait before a restart: a timer thread that the client's ``close()`` cancels.

    ``on_due(timer)`` runs on the timer's thread once ``delay`` seconds passed. If the client
    closes first, ``on_client_closed(timer)`` says whether this is still the pipeline's
    pending restart; then the timer is cancelled and waited for (up to the close deadline).
    """

    def __init__(
        self,
        delay: float,
        on_due: Callable[[RestartTimer], None],
        on_client_closed: Callable[[RestartTimer], bool],
        context: ClientContext | None,
    ) -> None:
        self._thread = threading.Timer(delay, self._due)
        self._thread.name = "rxstargate-pipeline-restart"
        self._thread.daemon = True
        self._on_due = on_due
        self._on_client_closed = on_client_closed
        self._context = context
        self._lock = threading.Lock()
        self._hook: int | None = None  # the key of our hook in the client's close()
        self._over = False  # fired, cancelled or closed: the hook is not needed any more

    def start(self) -> None:
        self._thread.start()
        context = self._context
        if context is None:
            return
        try:
            hook = context.on_close(self._client_closing)
        except ClosedError:  # closed already
            self._client_closing(None)
            return
        with self._lock:
            if not self._over:
                self._hook = hook
                return
        context.remove_on_close(hook)  # it fired (or was cancelled) meanwhile

    def cancel(self) -> None:
        """Never fire (idempotent); forget the hook in the client's ``close()``."""
        self._thread.cancel()
        self._forget_hook()

    def _forget_hook(self) -> None:
        with self._lock:
            self._over = True
            hook, self._hook = self._hook, None
        if hook is not None and self._context is not None:
            self._context.remove_on_close(hook)

    def _due(self) -> None:
        self._forget_hook()
        self._on_due(self)

    def _client_closing(self, deadline: float | None) -> None:
        with self._lock:
            self._over = True
            self._hook = None  # close() forgets its hooks itself
        if not self._on_client_closed(self):
            return  # running (its stream completes) or ended: nothing to do
        self._thread.cancel()
        if deadline is not None and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - time.monotonic()))
