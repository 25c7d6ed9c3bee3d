"""What the demo measures while it runs: latency split into waiting and handling, order per
customer, redeliveries, the peak in flight, and what the producer stored."""

from __future__ import annotations

import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rxstargate as rs

__all__ = ["DemoSummary", "Tally"]

Percentiles = tuple[float, float, float]


@dataclass(frozen=True)
class DemoSummary:
    """What the demo measured.

    Attributes:
        messages: orders produced and processed.
        seconds: wall time from the first send to the last handled order.
        throughput: messages per second over that time.
        latency_ms: end-to-end latency percentiles (p50, p95, p99), from an order's event time
            (when the producer made it) to the end of its handling.
        redeliveries: deliveries with a redelivery count above zero.
        peak_in_flight: the most messages taken and not yet finished at once.
        out_of_order: messages handled before an earlier one of the same customer (0 expected).
        max_in_flight: the pipeline's bound on messages taken and not yet settled.
        concurrency: handler calls at once.
        waiting_ms: the part of the latency spent before the handler started (p50, p95, p99):
            in the broker's backlog, then in the pipeline's queue, since the producer runs
            ahead of the handlers.
        handling_ms: the part spent in the handler (p50, p95, p99).
    """

    messages: int
    seconds: float
    throughput: float
    latency_ms: Percentiles
    redeliveries: int
    peak_in_flight: int
    out_of_order: int
    max_in_flight: int
    concurrency: int
    waiting_ms: Percentiles
    handling_ms: Percentiles


def _percentiles(samples: list[float]) -> Percentiles:
    """p50, p95 and p99 of ``samples`` (zeros when there are none)."""
    if len(samples) < 2:
        only = samples[0] if samples else 0.0
        return only, only, only
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[94], cuts[98]


def _milliseconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() * 1000


class Tally:
    """Counts what the demo's handler and the producer's acks observer report.

    ``handled`` runs on the pipeline's worker threads, ``on_ack`` on the producer's acks
    thread; the main thread reads ``done``, ``failures``, ``stored`` and :meth:`summary`.
    """

    def __init__(self, messages: int) -> None:
        self.messages = messages
        self.done = threading.Event()
        self.failures: list[Exception] = []
        self.stored = 0
        #: Reads the pipeline's in-flight count; set once the pipeline exists.
        self.in_flight: Callable[[], int] = lambda: 0
        self._lock = threading.Lock()
        self._waiting: list[float] = []
        self._handling: list[float] = []
        self._latency: list[float] = []
        self._last_order: dict[str, int] = {}
        self._out_of_order = 0
        self._redeliveries = 0
        self._peak = 0

    def handled(
        self, message: rs.Message[Any], order: dict[str, Any], started: datetime, ended: datetime
    ) -> None:
        """Record one handled order: ``started`` and ``ended`` bound its handling."""
        with self._lock:
            self._peak = max(self._peak, self.in_flight())
            if message.event_time is not None:
                self._waiting.append(_milliseconds(message.event_time, started))
                self._latency.append(_milliseconds(message.event_time, ended))
            self._handling.append(_milliseconds(started, ended))
            previous = self._last_order.get(order["customer"], -1)
            if order["order"] < previous:
                self._out_of_order += 1
            self._last_order[order["customer"]] = max(previous, order["order"])
            if message.redelivery_count:
                self._redeliveries += 1
            if len(self._handling) >= self.messages:
                self.done.set()

    def on_ack(self, ack: rs.ProducerAck) -> None:
        """Count a stored order; keep the first failure, which ends the demo."""
        if ack.ok:
            self.stored += 1
        elif not self.failures:
            reason = f": {ack.error_message}" if ack.error_message else ""
            self.failures.append(
                rs.StargateError(f"order {ack.context} was not stored: {ack.result}{reason}")
            )

    def summary(self, seconds: float, *, max_in_flight: int, concurrency: int) -> DemoSummary:
        """The figures so far, over ``seconds`` of wall time."""
        with self._lock:
            handled = len(self._handling)
            return DemoSummary(
                messages=handled,
                seconds=seconds,
                throughput=handled / seconds if seconds else 0.0,
                latency_ms=_percentiles(self._latency),
                redeliveries=self._redeliveries,
                peak_in_flight=self._peak,
                out_of_order=self._out_of_order,
                max_in_flight=max_in_flight,
                concurrency=concurrency,
                waiting_ms=_percentiles(self._waiting),
                handling_ms=_percentiles(self._handling),
            )
