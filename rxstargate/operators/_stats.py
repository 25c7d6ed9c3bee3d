"""Counters of a processing stage, safe to read from any thread."""

from __future__ import annotations

import threading
import time

__all__ = ["UNCOUNTED", "ProcessingStats", "Uncounted"]


class ProcessingStats:
    """What a ``process`` stage (or a :class:`~rxstargate.operators.Pipeline`) has done.

    Attributes:
        received: messages taken from upstream.
        processed: messages whose handling succeeded (emitted, or settled by an outcome).
        failed: messages that failed for good (then nacked, dead-lettered or fatal).
        retried: retries scheduled.
        dead_lettered: messages sent to the dead-letter topic and acked.
        in_flight: messages taken and not yet finished.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self.received = 0
        self.processed = 0
        self.failed = 0
        self.retried = 0
        self.dead_lettered = 0

    def add(self, name: str, count: int = 1) -> None:
        """Add ``count`` to the counter ``name``."""
        with self._lock:
            self.__dict__[name] += count

    @property
    def in_flight(self) -> int:
        """Messages received and not finished yet."""
        with self._lock:
            return self.received - self.processed - self.failed

    @property
    def rate(self) -> float:
        """Messages finished per second since the counters started."""
        elapsed = max(1e-9, time.monotonic() - self._started)
        return (self.processed + self.failed) / elapsed

    def snapshot(self) -> dict[str, float]:
        """All counters at once, for display."""
        with self._lock:
            values: dict[str, float] = {
                "received": self.received,
                "processed": self.processed,
                "failed": self.failed,
                "retried": self.retried,
                "dead_lettered": self.dead_lettered,
            }
        values["in_flight"] = values["received"] - values["processed"] - values["failed"]
        values["rate"] = self.rate
        return values

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{k}={v:.1f}" if k == "rate" else f"{k}={int(v)}" for k, v in self.snapshot().items()
        )
        return f"ProcessingStats({parts})"


class Uncounted:
    """Stands in for the ProcessingStats of a stage that was given none."""

    __slots__ = ()

    def add(self, name: str, count: int = 1) -> None:
        """Counts nothing."""


UNCOUNTED = Uncounted()
