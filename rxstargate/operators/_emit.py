"""Emitting to an operator's downstream observer when the upstream already serializes it.

``SerialObserver`` (``rxstargate._serial``) serializes emissions that come from many threads.
A stage whose every emission happens inside an upstream event (a ``process`` at concurrency
1 with a plain handler, no timeout and no retry: calls run inline, and no timer emits) needs
no lock for that: the upstream's own grammar already keeps its events one at a time.
:class:`InlineObserver` keeps the rest of the contract: a re-entrant emission (from inside
the observer's own ``on_next``) waits for the current one; what the observer's ``on_next``
raises ends the stream with ``on_error`` of that exception, once; nothing follows a terminal
event; a raising terminal callback is logged, never raised into rxstargate.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from reactivex import abc

__all__ = ["InlineObserver"]

log = logging.getLogger("rxstargate.operators")

T = TypeVar("T")


class InlineObserver(Generic[T]):
    """Passes events to ``observer`` on the calling thread; see the module docstring.

    ``on_raised`` (optional) is called once the observer raised, after its ``on_error``.
    Not thread-safe: only for emissions the upstream serializes.
    """

    __slots__ = ("_emitting", "_ended", "_final", "_observer", "_on_raised", "_queue")

    def __init__(
        self, observer: abc.ObserverBase[T], on_raised: Callable[[], None] | None = None
    ) -> None:
        self._observer = observer
        self._on_raised = on_raised
        self._queue: collections.deque[T] = collections.deque()
        self._final: tuple[Callable[..., None], tuple[Any, ...]] | None = None
        self._emitting = False
        self._ended = False

    @property
    def ended(self) -> bool:
        """True once a terminal event was emitted (or the observer raised)."""
        return self._ended

    def on_next(self, value: T) -> None:
        if self._ended:
            return
        if self._emitting:
            self._queue.append(value)  # re-entered from the observer: after this one
            return
        self._emitting = True
        try:
            self._observer.on_next(value)
            while self._queue:
                self._observer.on_next(self._queue.popleft())
        except Exception as exc:  # the user's callback: end the stream with it
            self._queue.clear()
            self._final = None
            self._emitting = False
            self._raised(exc)
            return
        self._emitting = False
        if self._final is not None:
            call, args = self._final
            self._final = None
            _call_terminal(call, *args)

    def on_error(self, error: Exception) -> None:
        self._terminal(self._observer.on_error, error)

    def on_completed(self) -> None:
        self._terminal(self._observer.on_completed)

    def _terminal(self, call: Callable[..., None], *args: Any) -> None:
        if self._ended:
            return
        self._ended = True
        if self._emitting:
            self._final = (call, args)  # after what the observer is handling, and its queue
            return
        _call_terminal(call, *args)

    def _raised(self, error: Exception) -> None:
        log.debug("observer raised %r; ending the stream", error)
        self._ended = True
        _call_terminal(self._observer.on_error, error)
        if self._on_raised is not None:
            self._on_raised()


def _call_terminal(call: Callable[..., None], *args: Any) -> None:
    """A terminal callback: what it raises is logged, never raised into rxstargate."""
    try:
        call(*args)
    except Exception:
        log.exception("an observer's terminal callback raised")
