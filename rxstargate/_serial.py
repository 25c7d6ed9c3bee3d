"""Serialized emission to one observer from many threads (Rx grammar), never blocking emitters.

Whichever thread emits while another is emitting only queues its item; the emitting thread
delivers it next. Nothing is delivered after a terminal event.

An exception raised by the observer's ``on_next`` (the user's callback) never escapes into the
emitting thread, which is usually one of rxstargate's: the stream ends with ``on_error`` of that
exception, once, and what was still queued is dropped (its messages are unsettled, so the broker
redelivers them). ``hand_off`` moves emission to a thread of its own (``HandOff``) for callers
that must not run the observer on their own thread.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from reactivex import abc

__all__ = ["HandOff", "SerialObserver"]

log = logging.getLogger("rxstargate.operators")

T = TypeVar("T")

_COMPLETED = object()


class _Error:
    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class _Call:
    __slots__ = ("args", "function")

    def __init__(self, function: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.function = function
        self.args = args


class SerialObserver(Generic[T]):
    """Wraps ``observer`` so that calls from many threads reach it one at a time.

    ``on_raised`` (optional) is called once the observer raised, after its ``on_error``: the
    owner stops its own work there.
    """

    def __init__(
        self, observer: abc.ObserverBase[T], on_raised: Callable[[], None] | None = None
    ) -> None:
        self._observer = observer
        self._on_raised = on_raised
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
            if self._emitting:
                self._queue.append(item)
                return
            self._emitting = True
        # This thread emits: its own item first (it was the queue's only one), then whatever
        # others queued meanwhile. Two lock rounds per item when nothing else is emitting.
        observer = self._observer
        while True:
            if item is _COMPLETED:
                _terminal(observer.on_completed)
            elif isinstance(item, _Error):
                _terminal(observer.on_error, item.error)
            else:
                try:
                    observer.on_next(item)
                except Exception as exc:  # the user's callback: end the stream with it
                    self._raised(exc)
                    return
            with self._lock:
                if not self._queue:
                    self._emitting = False
                    return
                item = self._queue.popleft()

    def _raised(self, error: Exception) -> None:
        log.debug("observer raised %r; ending the stream", error)
        with self._lock:
            self._ended = True
            self._queue.clear()
            self._emitting = False
        _terminal(self._observer.on_error, error)
        if self._on_raised is not None:
            self._on_raised()


def _terminal(call: Callable[..., None], *args: Any) -> None:
    """A terminal callback: what it raises is logged, never raised into rxstargate."""
    try:
        call(*args)
    except Exception:
        log.exception("an observer's terminal callback raised")


class HandOff(Generic[T]):
    """Emits to ``observer`` on a thread of its own, in the order handed over.

    That thread is the observer's only emitter, so it needs no lock, and the hand-off keeps
    the rest of the Rx contract itself: what the observer's ``on_next`` raises (or a
    :meth:`call`) ends the stream with ``on_error`` of that exception, once; nothing follows a
    terminal event; a raising terminal callback is logged, never raised.
    The thread starts with the first item (or :meth:`start`) and ends after a terminal event
    was delivered, or on :meth:`stop` (what is still queued is then dropped). Handing over
    never blocks: the queue is bounded by what the caller has in flight (a stream's credit).
    The thread takes what was queued all at once and is woken only when it waits, so a burst
    of items costs one wake-up, not one each; :meth:`on_next_all` queues a burst as one entry.
    """

    def __init__(self, observer: abc.ObserverBase[T], name: str) -> None:
        self._observer = observer
        self._name = name
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        # Lists of items (one for each on_next_all, one item long for on_next), _Call,
        # _Error and _COMPLETED.
        self._queue: collections.deque[Any] = collections.deque()
        self._thread: threading.Thread | None = None
        self._waiting = False  # the thread waits for items: wake it
        self._stopped = False
        self._ended = False
        #: True once a terminal event was handed over, the observer raised, or it stopped (a
        #: plain attribute, for callers that check it for every item).
        self.closed = False

    def on_next(self, value: T) -> None:
        self._put([value])

    def on_error(self, error: Exception) -> None:
        self._put(_Error(error))

    def on_completed(self) -> None:
        self._put(_COMPLETED)

    def on_next_all(self, values: list[T]) -> None:
        """Hand over several items at once: ``on_next`` of each, with one lock round.

        The list is the hand-off's from then on: the caller must not change it.
        """
        if values:
            self._put(values)

    def call(self, function: Callable[..., None], *args: Any) -> None:
        """Run ``function(*args)`` on the thread, in order with the items handed over.

        Dropped, as items are, once the stream ended or stopped. What it raises ends the
        stream with ``on_error`` of it, as an exception raised by the observer does.
        """
        self._put(_Call(function, args))

    def start(self) -> None:
        """Start the thread now, rather than with the first item (from the caller's thread)."""
        with self._lock:
            if self._thread is None and not self._stopped:
                self._wake_locked()

    @property
    def ended(self) -> bool:
        """True once a terminal event was handed over, the observer raised, or it stopped."""
        return self.closed

    def stop(self) -> None:
        """Deliver nothing more and let the thread end (it never waits for it)."""
        with self._lock:
            self._stopped = self.closed = True
            self._queue.clear()
            self._ready.notify()

    def _put(self, item: Any) -> None:
        with self._lock:
            if self._stopped or self._ended:
                return
            if item is _COMPLETED or type(item) is _Error:
                self._ended = self.closed = True
            self._queue.append(item)
            self._wake_locked()

    def _wake_locked(self) -> None:
        """Under the lock, with something queued: start the thread, or wake it if it waits."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        elif self._waiting:
            self._waiting = False
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopped:
                    self._waiting = True
                    self._ready.wait()
                if self._stopped:
                    return
                entries, self._queue = self._queue, collections.deque()
            try:
                if not self._emit(entries):
                    return
            except Exception as exc:  # the observer's, or a call's: end the stream with it
                log.debug("an observer or a call handed over raised %r; ending the stream", exc)
                with self._lock:
                    self._stopped = self.closed = True
                    self._queue.clear()
                _terminal(self._observer.on_error, exc)
                return

    def _emit(self, entries: collections.deque[Any]) -> bool:
        """Deliver ``entries`` in order; False once the stream ended or stopped."""
        on_next = self._observer.on_next
        for entry in entries:
            kind = type(entry)
            if kind is list:
                for value in entry:
                    if self._stopped:
                        return False  # stop() drops what is queued, taken already or not
                    on_next(value)
            elif self._stopped:
                return False
            elif kind is _Call:
                entry.function(*entry.args)
            elif entry is _COMPLETED:
                _terminal(self._observer.on_completed)
                return False
            else:
                _terminal(self._observer.on_error, entry.error)
                return False
        return True
