"""A hot, thread-safe stream that many observers may watch (producer acks, client errors).

Emissions are serialized (Rx grammar): whichever thread emits while another is emitting only
queues its item, and the emitting thread delivers it next, so no observer ever sees two calls
at once or a call after its terminal event, and emitters never wait for each other.

Each observer is isolated: if its ``on_next`` raises, that observer gets ``on_error`` with
the exception and is detached; the others and the emitting thread carry on.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import Disposable

__all__ = ["Fanout"]

T = TypeVar("T")
log = logging.getLogger("rxstargate")

_END = object()


class Fanout(Generic[T]):
    """Emit items to current observers; remember the terminal event for late ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._observers: list[abc.ObserverBase[T]] = []
        self._queue: collections.deque[Any] = collections.deque()
        self._emitting = False
        self._done = False
        self._ended = False
        self._error: Exception | None = None

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
        self._emit(value)

    def end(self, error: Exception | None = None) -> None:
        """Complete (or fail with ``error``) once; later calls do nothing."""
        with self._lock:
            if self._done:
                return
            self._done = True
            self._error = error
        self._emit(_END)

    def _emit(self, item: Any) -> None:
        with self._lock:
            if item is not _END and self._done:
                return
            self._queue.append(item)
            if self._emitting:
                return  # the emitting thread delivers it next
            self._emitting = True
        while True:
            with self._lock:
                if not self._queue:
                    self._emitting = False
                    return
                item = self._queue.popleft()
                if item is _END:
                    self._ended = True
                    observers, self._observers = self._observers, []
                else:
                    observers = self._observers
            if item is _END:
                for observer in observers:
                    if self._error is not None:
                        _safe(observer.on_error, self._error)
                    else:
                        _safe(observer.on_completed)
                continue
            for observer in observers:
                try:
                    observer.on_next(item)
                except Exception as exc:  # a user callback: route it, never raise it
                    log.warning("an observer raised %r; it receives on_error and is detached", exc)
                    self._remove(observer)
                    _safe(observer.on_error, exc)

    @property
    def done(self) -> bool:
        """True once ended."""
        return self._done


def _safe(callback: Any, *args: Any) -> None:
    try:
        callback(*args)
    except Exception as exc:
        log.warning("an observer's terminal callback raised %r", exc)
