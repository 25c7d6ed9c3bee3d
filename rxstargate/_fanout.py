"""A hot, thread-safe stream that many observers may watch (producer acks, client errors).

Each observer is isolated: if its ``on_next`` raises, that observer gets ``on_error`` with
the exception and is detached; the others and the emitting thread carry on.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import Disposable

__all__ = ["Fanout"]

T = TypeVar("T")
log = logging.getLogger("rxstargate")


class Fanout(Generic[T]):
    """Emit items to current observers; remember the terminal event for late ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._observers: list[abc.ObserverBase[T]] = []
        self._done = False
        self._error: Exception | None = None

    def observable(self) -> Observable[T]:
        """The stream; subscribing after the end replays only the terminal event."""

        def subscribe(
            observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            with self._lock:
                if not self._done:
                    self._observers = [*self._observers, observer]
                    return Disposable(lambda: self._remove(observer))
                error = self._error
            if error is not None:
                observer.on_error(error)
            else:
                observer.on_completed()
            return Disposable()

        return Observable(subscribe)

    def _remove(self, observer: abc.ObserverBase[T]) -> None:
        with self._lock:
            self._observers = [o for o in self._observers if o is not observer]

    def on_next(self, value: T) -> None:
        """Send ``value`` to every observer (from the caller's thread)."""
        for observer in self._observers:
            try:
                observer.on_next(value)
            except Exception as exc:  # a user callback: route it, never raise it
                log.warning("an observer raised %r; it receives on_error and is detached", exc)
                self._remove(observer)
                _safe(observer.on_error, exc)

    def end(self, error: Exception | None = None) -> None:
        """Complete (or fail with ``error``) once; later calls do nothing."""
        with self._lock:
            if self._done:
                return
            self._done = True
            self._error = error
            observers, self._observers = self._observers, []
        for observer in observers:
            if error is not None:
                _safe(observer.on_error, error)
            else:
                _safe(observer.on_completed)

    @property
    def done(self) -> bool:
        """True once ended."""
        return self._done


def _safe(callback: Any, *args: Any) -> None:
    try:
        callback(*args)
    except Exception as exc:
        log.warning("an observer's terminal callback raised %r", exc)
