"""What an App's streams say about themselves: readiness and counters, read when asked."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from rxstargate.pipeline import PipelineState
from rxstargate.service._build import ProducerEntry, StreamEntry
from rxstargate.service._connections import ConnectionWatch, Endpoint
from rxstargate.service._metrics import ProducerMetrics, StreamMetrics

__all__ = ["all_connected", "producer_figures", "stream_figures"]


def all_connected(
    streams: Iterable[StreamEntry], producers: Iterable[ProducerEntry], watch: ConnectionWatch
) -> bool:
    """Every consumer and reader running with its socket open, and no producer failed or
    without the socket it once opened (a producer opens on its first send, so one not used
    yet does not count)."""
    streams = list(streams)
    needed: Counter[Endpoint] = Counter(stream.endpoint for stream in streams)
    if any(watch.open_now(where) < count for where, count in needed.items()):
        return False
    if any(stream.pipeline.state is not PipelineState.RUNNING for stream in streams):
        return False
    return all(
        p.error is None and (watch.opened(p.endpoint) == 0 or watch.open_now(p.endpoint) > 0)
        for p in producers
    )


def stream_figures(entry: StreamEntry, watch: ConnectionWatch) -> StreamMetrics:
    """The counters of one consumer or reader now."""
    stats = entry.pipeline.stats.snapshot()
    return StreamMetrics(
        entry.kind,
        processed=int(stats["processed"]),
        failed=int(stats["failed"]),
        retried=int(stats["retried"]),
        dead_lettered=int(stats["dead_lettered"]),
        redelivered=entry.counters.redelivered,
        in_flight=int(stats["in_flight"]),
        restarts=entry.pipeline.restarts,
        reconnects=max(0, watch.opened(entry.endpoint) - 1),
        connected=watch.open_now(entry.endpoint),
        handler_seconds=entry.counters.durations.snapshot(),
    )


def producer_figures(entry: ProducerEntry, watch: ConnectionWatch) -> ProducerMetrics:
    """The counters of one producer now."""
    with entry.lock:
        acks, failures = entry.acks, entry.failures
    return ProducerMetrics(
        acks,
        failures,
        max(0, watch.opened(entry.endpoint) - 1),
        watch.open_now(entry.endpoint),
    )
