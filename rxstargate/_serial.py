"""Serialized emission to one observer from many threads (Rx grammar), never blocking emitters.

Whichever thread emits while another is emitting only queues its item; the emitting thread
delivers it next. Nothing is delivered after a terminal event.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Generic, TypeVar

from reactivex import abc

__all__ = ["SerialObserver"]

T = TypeVar("T")

_COMPLETED = object()


class _Error:
    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class SerialObserver(Generic[T]):
    """Wraps ``observer`` so that calls from many threads reach it one at a time."""

    def __init__(self, observer: abc.ObserverBase[T]) -> None:
        self._observer = observer
        self._lock = threading.Lock()
        self._queue: collections.deque[Any] = collections.deque()
        self._emitting = False
        self._ended = False

    @property
    def observer(self) -> abc.ObserverBase[T]:
        """The wrapped observer, for a caller that knows it is the only emitter."""
        return self._observer

    @property
    def ended(self) -> bool:
        """True once a terminal event was queued."""
        return self._ended

    def on_next(self, value: T) -> None:
        self._push(value, terminal=False)

    def on_error(self, error: Exception) -> None:
        self._push(_Error(error), terminal=True)

    def on_completed(self) -> None:
        self._push(_COMPLETED, terminal=True)

    def _push(self, item: Any, terminal: bool) -> None:
        with self._lock:
            if self._ended:
                return
            if terminal:
                self._ended = True
            self._queue.append(item)
            if self._emitting:
                return
            self._emitting = True
        observer = self._observer
        while True:
            with self._lock:
                if not self._queue:
                    self._emitting = False
                    return
                item = self._queue.popleft()
            if item is _COMPLETED:
                observer.on_completed()
            elif isinstance(item, _Error):
                observer.on_error(item.error)
            else:
                observer.on_next(item)
