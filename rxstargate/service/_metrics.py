"""An App's counters as plain values: per stream, per producer, summed over worker processes.

These are what ``app.metrics()`` returns and what worker processes send their supervisor
(as JSON); the Prometheus exposition is built from them, so the same numbers are available
with or without the ``metrics`` extra.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = [
    "DURATION_BUCKETS",
    "AppMetrics",
    "DurationHistogram",
    "Durations",
    "ProducerMetrics",
    "StreamMetrics",
]

#: Upper bounds (seconds) of the handler-duration buckets: Prometheus's defaults.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


@dataclass(frozen=True)
class Durations:
    """A histogram of handler call durations.

    Attributes:
        counts: calls per bucket (not cumulative), one more than ``DURATION_BUCKETS``
            (the last one counts the calls slower than every bound).
        total: the sum of all durations, in seconds.
    """

    counts: tuple[int, ...] = (0,) * (len(DURATION_BUCKETS) + 1)
    total: float = 0.0

    @property
    def count(self) -> int:
        """How many calls were timed."""
        return sum(self.counts)

    def __add__(self, other: Durations) -> Durations:
        return Durations(
            tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)),
            self.total + other.total,
        )


class DurationHistogram:
    """A thread-safe :class:`Durations` being filled."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = [0] * (len(DURATION_BUCKETS) + 1)
        self._total = 0.0

    def observe(self, seconds: float) -> None:
        """Count one call that took ``seconds``."""
        index = bisect.bisect_left(DURATION_BUCKETS, seconds)
        with self._lock:
            self._counts[index] += 1
            self._total += seconds

    def snapshot(self) -> Durations:
        """The histogram so far."""
        with self._lock:
            return Durations(tuple(self._counts), self._total)


@dataclass(frozen=True)
class StreamMetrics:
    """What one consumer or reader did (summed over worker processes).

    Attributes:
        kind: ``"consumer"`` or ``"reader"``.
        processed: messages whose handler finished and which were settled (acked, or settled
            by a ``Nack()`` outcome).
        failed: messages that failed for good (then nacked, dead-lettered or fatal).
        retried: handler retries scheduled.
        dead_lettered: messages sent to the dead-letter producer, then acked.
        redelivered: messages that arrived with a redelivery count above 0 (counted once per
            delivery, not per retry).
        in_flight: messages taken and not finished yet (a gauge).
        restarts: restarts of the supervised pipeline after failures.
        reconnects: sockets opened again after the first (reconnects and restarts).
        connected: sockets open now (a gauge; one per process when all is well).
        handler_seconds: handler call durations, retries included.
    """

    kind: str
    processed: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    redelivered: int = 0
    in_flight: int = 0
    restarts: int = 0
    reconnects: int = 0
    connected: int = 0
    handler_seconds: Durations = field(default_factory=Durations)

    def __add__(self, other: StreamMetrics) -> StreamMetrics:
        sums = {name: getattr(self, name) + getattr(other, name) for name in _STREAM_SUMS}
        return StreamMetrics(
            self.kind, handler_seconds=self.handler_seconds + other.handler_seconds, **sums
        )


_STREAM_SUMS = (
    "processed",
    "failed",
    "retried",
    "dead_lettered",
    "redelivered",
    "in_flight",
    "restarts",
    "reconnects",
    "connected",
)


@dataclass(frozen=True)
class ProducerMetrics:
    """What one producer did (summed over worker processes).

    Attributes:
        acks: messages the broker stored.
        failures: messages that failed (refused, or could not be sent).
        reconnects: sockets opened again after the first.
        connected: sockets open now (a gauge; a producer opens on its first send).
    """

    acks: int = 0
    failures: int = 0
    reconnects: int = 0
    connected: int = 0

    def __add__(self, other: ProducerMetrics) -> ProducerMetrics:
        return ProducerMetrics(
            self.acks + other.acks,
            self.failures + other.failures,
            self.reconnects + other.reconnects,
            self.connected + other.connected,
        )


@dataclass(frozen=True)
class AppMetrics:
    """A snapshot of an App's counters: ``app.metrics()``.

    Attributes:
        streams: consumers and readers by name.
        producers: producers by name.
        ready: every stream connected (see ``App.ready``).
        processes: how many worker processes these figures cover (1 in one process).

    Example:
        >>> app.metrics().streams["billing"].processed  # doctest: +SKIP
        1200
    """

    streams: Mapping[str, StreamMetrics] = field(default_factory=dict)
    producers: Mapping[str, ProducerMetrics] = field(default_factory=dict)
    ready: bool = False
    processes: int = 1

    def __add__(self, other: AppMetrics) -> AppMetrics:
        return AppMetrics(
            _sum_by_name(self.streams, other.streams),
            _sum_by_name(self.producers, other.producers),
            self.ready and other.ready,
            self.processes + other.processes,
        )

    def counters_only(self) -> AppMetrics:
        """These figures without the gauges (what a process that ended leaves to the totals)."""
        return AppMetrics(
            {name: replace(s, in_flight=0, connected=0) for name, s in self.streams.items()},
            {name: replace(p, connected=0) for name, p in self.producers.items()},
            True,
            0,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what worker processes send); :meth:`from_json` reads it back."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AppMetrics:
        """The snapshot :meth:`to_json` wrote.

        Raises:
            KeyError, TypeError, ValueError: for data of another shape.
        """
        streams = {}
        for name, values in data["streams"].items():
            durations = values["handler_seconds"]
            streams[str(name)] = StreamMetrics(
                **{
                    **values,
                    "handler_seconds": Durations(tuple(durations["counts"]), durations["total"]),
                }
            )
        producers = {
            str(name): ProducerMetrics(**values) for name, values in data["producers"].items()
        }
        return cls(streams, producers, bool(data["ready"]), int(data["processes"]))

    @classmethod
    def total(cls, snapshots: Iterable[AppMetrics]) -> AppMetrics:
        """The sum of ``snapshots`` (an empty sum is not ready)."""
        result: AppMetrics | None = None
        for snapshot in snapshots:
            result = snapshot if result is None else result + snapshot
        return result if result is not None else AppMetrics(processes=0)


def _sum_by_name(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(left)
    for name, value in right.items():
        merged[name] = merged[name] + value if name in merged else value
    return merged
