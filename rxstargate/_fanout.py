"""A hot, thread-safe stream that many observers may watch (producer acks, client errors).

Emissions are serialized (Rx grammar, see ``_serial``): no observer ever sees two calls at once
or a call after its terminal event, and emitting threads never wait for each other.

Each observer is isolated: if its ``on_next`` raises, that observer gets ``on_error`` with
the exception and is detached; the others and the emitting thread carry on.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from rxstargate._serial import SerialObserver

__all__ = ["Fanout"]

T = TypeVar("T")
log = logging.getLogger("rxstargate")


class Fanout(Generic[T]):
    """Emit items to current observers; remember the terminal event for late ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._observers: list[abc.ObserverBase[T]] = []
        self._done = False  # the end was asked for
        self._ended = False  # the end was delivered: late subscribers get it at once
        self._error: Exception | None = None
        self._serial: SerialObserver[T] = SerialObserver(_Broadcast(self))

    def observable(self) -> Observable[T]:
        """The stream; subscribing after the end replays only the terminal event."""

        def subscribe(
            observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            with self._lock:
                if not self._ended:
                    self._observers = [*self._observers, observer]
                    return Disposable(lambda: self._remove(observer))
                error = self._error
            if error is not None:
                _safe(observer.on_error, error)
            else:
                _safe(observer.on_completed)
            return Disposable()

        return Observable(subscribe)

    @property
    def observed(self) -> bool:
        """True while at least one observer is subscribed."""
        return bool(self._observers)

    def _remove(self, observer: abc.ObserverBase[T]) -> None:
        with self._lock:
            self._observers = [o for o in self._observers if o is not observer]

    def on_next(self, value: T) -> None:
        """Send ``value`` to every observer; ignored after :meth:`end`."""
        if not self._done:
            self._serial.on_next(value)

    def end(self, error: Exception | None = None) -> None:
        """Complete (or fail with ``error``) once; later calls do nothing."""
        with self._lock:
            if self._done:
                return
            self._done = True
            self._error = error
        if error is not None:
            self._serial.on_error(error)
        else:
            self._serial.on_completed()

    @property
    def done(self) -> bool:
        """True once ended."""
        return self._done


class _Broadcast(abc.ObserverBase[T], Generic[T]):
    """The one observer behind the serializer: hands each call to every current observer."""

    def __init__(self, fanout: Fanout[T]) -> None:
        self._fanout = fanout

    def on_next(self, value: T) -> None:
        for observer in self._fanout._observers:
            try:
                observer.on_next(value)
            except Exception as exc:  # a user callback: route it, never raise it
                log.warning("an observer raised %r; it receives on_error and is detached", exc)
                self._fanout._remove(observer)
                _safe(observer.on_error, exc)

    def _end(self) -> list[abc.ObserverBase[T]]:
        fanout = self._fanout
        with fanout._lock:
            fanout._ended = True
            observers, fanout._observers = fanout._observers, []
        return observers

    def on_error(self, error: Exception) -> None:
        for observer in self._end():
            _safe(observer.on_error, error)

    def on_completed(self) -> None:
        for observer in self._end():
            _safe(observer.on_completed)


def _safe(callback: Any, *args: Any) -> None:
    try:
        callback(*args)
    except Exception as exc:
        log.warning("an observer's terminal callback raised %r", exc)
