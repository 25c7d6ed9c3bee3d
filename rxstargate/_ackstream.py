"""A producer's ``acks`` stream: emitted on a thread of its own, freeing send slots as it goes.

Acks are handed over by the producer's receive thread (and by senders, for messages refused
before sending) and emitted, in that order, on the "rxstargate-acks-<topic>" thread, started
only once someone observes. An observer may therefore call the producer's ``send()`` without
stopping acks from being read. A send slot is freed once its ack was emitted, so a slow
observer slows the producer down instead of letting acks pile up.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from reactivex import Observable

from rxstargate._fanout import Fanout
from rxstargate.models import ProducerAck

__all__ = ["AckStream"]

_SLOT: Any = object()


class _End:
    __slots__ = ("error",)

    def __init__(self, error: Exception | None) -> None:
        self.error = error


class AckStream:
    """The ``acks`` of one producer; ``release_slot`` frees one send slot."""

    def __init__(self, name: str, release_slot: Callable[[], None]) -> None:
        self._name = name
        self._release_slot = release_slot
        self._fanout: Fanout[ProducerAck] = Fanout()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ended = False

    @property
    def delivers(self) -> bool:
        """Whether an ack emitted now reaches an observer (observed, and not ended yet)."""
        return self._fanout.observed and not self._ended

    def observable(self) -> Observable[ProducerAck]:
        """The hot stream of acks."""
        return self._fanout.observable()

    def on_own_thread(self) -> bool:
        """True when called from an ``acks`` observer."""
        return self._thread is threading.current_thread()

    def emit(self, ack: ProducerAck, slot: bool = False) -> None:
        """Emit ``ack``; with ``slot``, free one send slot once it was emitted."""
        if not self._fanout.observed:
            if slot:
                self._release_slot()
            return
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name=f"rxstargate-acks-{self._name}", daemon=True
                    )
                    self._thread.start()
        self._queue.put(ack)
        if slot:
            self._queue.put(_SLOT)

    def end(self, error: Exception | None) -> None:
        """Complete (or fail) the stream after what was emitted so far."""
        self._ended = True
        self._queue.put(_End(error))

    def wait_ended(self, deadline: float) -> None:
        """Wait for the acks thread to emit the end (never past ``deadline``)."""
        thread = self._thread
        if thread is None:
            self._drain()
        elif thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                self._fanout.end(item.error)
                return
            if item is _SLOT:
                self._release_slot()
            else:
                self._fanout.on_next(item)

    def _drain(self) -> None:
        """No acks thread ever started: end the stream here."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _End):
                self._fanout.end(item.error)
                return
