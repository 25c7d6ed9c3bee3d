"""An App's metrics in Prometheus's text format (``prometheus-client``, the ``metrics`` extra).

The figures come from an :class:`AppMetrics` snapshot (in one process, ``app.metrics()``; under
``rxstargate run --processes N``, the sum the supervisor keeps of its workers' snapshots), so
one port serves every process together.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from rxstargate.service._metrics import DURATION_BUCKETS, AppMetrics

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

__all__ = ["Exposition", "available", "render"]

_STREAM_COUNTERS = (
    ("processed", "Messages whose handler finished and which were settled."),
    ("failed", "Messages that failed for good (then nacked, dead-lettered or fatal)."),
    ("retried", "Handler retries scheduled."),
    ("dead_lettered", "Messages sent to the dead-letter producer, then acked."),
    ("redelivered", "Messages that arrived with a redelivery count above 0."),
    ("restarts", "Restarts of the supervised pipeline after failures."),
)


@dataclass(frozen=True)
class Exposition:
    """What the metrics port shows: the app's figures and, under a supervisor, its workers.

    Attributes:
        app: the figures (summed over worker processes).
        workers: worker processes running now (None in one process).
        worker_restarts: worker processes restarted after they died (None in one process).
    """

    app: AppMetrics
    workers: int | None = None
    worker_restarts: int | None = None


def available() -> bool:
    """Whether prometheus-client is installed."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def render(exposition: Exposition) -> tuple[bytes, str]:
    """The exposition as Prometheus text, with its content type.

    Raises:
        ImportError: without prometheus-client.
    """
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(cast("Collector", _Collector(exposition)))  # it has collect(): enough
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Collector:
    """A prometheus-client collector of one snapshot."""

    def __init__(self, exposition: Exposition) -> None:
        self._exposition = exposition

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        app = self._exposition.app
        for name, text in _STREAM_COUNTERS:
            family = CounterMetricFamily(f"rxstargate_{name}", text, labels=["consumer"])
            for stream, figures in app.streams.items():
                family.add_metric([stream], getattr(figures, name))
            yield family
        in_flight = GaugeMetricFamily(
            "rxstargate_in_flight", "Messages taken and not finished yet.", labels=["consumer"]
        )
        durations = HistogramMetricFamily(
            "rxstargate_handler_seconds",
            "Handler call durations, retries included.",
            labels=["consumer"],
        )
        for stream, figures in app.streams.items():
            in_flight.add_metric([stream], figures.in_flight)
            histogram = figures.handler_seconds
            cumulative, buckets = 0, []
            for bound, count in zip(
                (*DURATION_BUCKETS, float("inf")), histogram.counts, strict=True
            ):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            durations.add_metric([stream], buckets, sum_value=histogram.total)
        yield in_flight
        yield durations
        yield from self._producers(app, CounterMetricFamily)
        yield from self._connections(app, CounterMetricFamily, GaugeMetricFamily)
        yield GaugeMetricFamily("rxstargate_ready", "1 when every stream is connected.", app.ready)
        if self._exposition.workers is not None:
            yield GaugeMetricFamily(
                "rxstargate_worker_processes", "Worker processes running.", self._exposition.workers
            )
            yield CounterMetricFamily(
                "rxstargate_worker_restarts",
                "Worker processes restarted after they died.",
                self._exposition.worker_restarts or 0,
            )

    @staticmethod
    def _producers(app: AppMetrics, counter: Any) -> Iterator[Any]:
        acks = counter(
            "rxstargate_producer_acks", "Messages the broker stored.", labels=["producer"]
        )
        failures = counter(
            "rxstargate_producer_failures",
            "Messages that failed to be stored.",
            labels=["producer"],
        )
        for name, figures in app.producers.items():
            acks.add_metric([name], figures.acks)
            failures.add_metric([name], figures.failures)
        yield acks
        yield failures

    @staticmethod
    def _connections(app: AppMetrics, counter: Any, gauge: Any) -> Iterator[Any]:
        labels = ["stream", "kind"]
        reconnects = counter(
            "rxstargate_reconnects", "Sockets opened again after the first.", labels=labels
        )
        connected = gauge("rxstargate_connected", "Sockets open now.", labels=labels)
        for name, stream in app.streams.items():
            reconnects.add_metric([name, stream.kind], stream.reconnects)
            connected.add_metric([name, stream.kind], stream.connected)
        for name, producer in app.producers.items():
            reconnects.add_metric([name, "producer"], producer.reconnects)
            connected.add_metric([name, "producer"], producer.connected)
        yield reconnects
        yield connected
