"""``rxstargate demo``: orders from a few hundred customers through a key-ordered pipeline.

It starts local Pulsar (unless given a URL), produces a keyed stream of orders with properties
and event times, consumes it with ``topic.consume`` (backpressured, key-ordered, acked), shows
live progress and ends with a summary table. It leaves nothing running.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import reactivex as rx

import rxstargate as rs

__all__ = ["DemoSummary", "run_demo"]


@dataclass(frozen=True)
class DemoSummary:
    """What the demo measured.

    Attributes:
        messages: orders produced and processed.
        seconds: wall time from the first send to the last ack.
        throughput: messages per second over that time.
        latency_ms: end-to-end latency percentiles (p50, p95, p99), event time to handling.
        redeliveries: deliveries with a redelivery count above zero.
        peak_in_flight: the most messages taken and not yet finished at once.
        out_of_order: messages handled before an earlier one of the same customer (0 expected).
    """

    messages: int
    seconds: float
    throughput: float
    latency_ms: tuple[float, float, float]
    redeliveries: int
    peak_in_flight: int
    out_of_order: int


@contextlib.contextmanager
def _endpoint(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from rxstargate.local import LocalPulsar

    # Its children in a session of their own: Ctrl-C at a terminal reaches the demo alone, which
    # closes its sockets and then stops them (else they die first, under in-flight work).
    with LocalPulsar(own_session=True) as local:
        yield local.ws_url


def _orders(count: int, customers: int, seed: int) -> Iterator[rs.OutgoingMessage]:
    rng = random.Random(seed)
    regions = ("eu", "us", "apac")
    for number in range(count):
        customer = f"customer-{rng.randrange(customers):04d}"
        order = {
            "order": number,
            "customer": customer,
            "amount": round(rng.uniform(5, 500), 2),
            "currency": "EUR",
        }
        yield rs.OutgoingMessage(
            json.dumps(order).encode(),
            key=customer,
            properties={"region": rng.choice(regions), "channel": rng.choice(("web", "app"))},
            event_time=datetime.now(UTC),
        )


def run_demo(
    url: str | None = None,
    *,
    token: str | None = None,
    messages: int = 20_000,
    customers: int = 300,
    concurrency: int = 8,
    show: bool = True,
) -> DemoSummary:
    """Run the demo and return its summary (printed with progress when ``show``).

    Args:
        url: a Pulsar WebSocket endpoint; None starts local Pulsar for the run.
        token: the endpoint's token, if it needs one.
        messages: how many orders.
        customers: how many distinct keys.
        concurrency: handler calls at once (orders of one customer stay in order).
        show: print live progress and the summary table.

    Example:
        >>> run_demo(messages=1000, show=False).messages  # doctest: +SKIP
        1000
    """
    if messages < 1 or customers < 1 or concurrency < 1:
        raise rs.ConfigurationError("messages, customers and concurrency must be positive")
    run = _Run()
    try:
        with _endpoint(url) as endpoint, rs.Client(endpoint, token=token) as client:
            return _run(client, messages, customers, concurrency, show, run)
    finally:
        run.end()


class _Run:
    """What outlives the client of one run: the sender thread, and quiet logs after a failure.

    After a failure or Ctrl-C the demo's one error says it all: the sockets that then close
    under in-flight work would each log a warning, so the library's logs are dropped until
    the run has ended.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.sender: threading.Thread | None = None
        self._quiet: contextlib.ExitStack | None = None
        # The pipeline's own "pipeline ended" record: the demo raises that error itself.
        self._pipeline_log = logging.getLogger("rxstargate.pipeline")
        self._pipeline_log.addFilter(_not_ended)

    def quiet(self) -> None:
        """Drop the library's log records until :meth:`end`."""
        self.stop.set()
        if self._quiet is None:
            from rxstargate.cli._common import quiet_logs

            self._quiet = contextlib.ExitStack()
            self._quiet.enter_context(quiet_logs())

    def end(self) -> None:
        self.stop.set()
        if self.sender is not None:
            self.sender.join(10.0)  # its producer is closed by now: it ends at once
        self._pipeline_log.removeFilter(_not_ended)
        if self._quiet is not None:
            self._quiet.close()


def _not_ended(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("pipeline ended")


def _run(
    client: rs.Client,
    messages: int,
    customers: int,
    concurrency: int,
    show: bool,
    run: _Run,
) -> DemoSummary:
    topic = client.topic(f"rxstargate-demo-orders-{uuid.uuid4().hex[:8]}")
    lock = threading.Lock()
    latencies: list[float] = []
    last_order: dict[str, int] = {}
    state = {"out_of_order": 0, "redeliveries": 0, "peak": 0, "stored": 0}
    failures: list[Exception] = []
    done = threading.Event()

    def handle(message: rs.Message[Any]) -> None:
        order = json.loads(message.payload)
        time.sleep(0.0005)  # a little I/O, as a real handler would do
        now = datetime.now(UTC)
        with lock:
            state["peak"] = max(state["peak"], pipeline.stats.in_flight)
            if message.event_time is not None:
                latencies.append((now - message.event_time).total_seconds() * 1000)
            previous = last_order.get(order["customer"], -1)
            if order["order"] < previous:
                state["out_of_order"] += 1
            last_order[order["customer"]] = max(previous, order["order"])
            if message.redelivery_count:
                state["redeliveries"] += 1
            if len(latencies) >= messages:
                done.set()

    def on_ack(ack: rs.ProducerAck) -> None:
        if ack.ok:
            state["stored"] += 1
        elif not failures:
            reason = f": {ack.error_message}" if ack.error_message else ""
            failures.append(
                rs.StargateError(f"order {ack.context} was not stored: {ack.result}{reason}")
            )

    pipeline = topic.consume(
        "demo",
        handle,
        concurrency=concurrency,
        key_ordered=True,
        max_in_flight=500,
        start="earliest",  # the first order is sent before the pipeline starts
    )
    started = time.monotonic()
    producer = topic.producer(max_in_flight=500)
    producer.acks.subscribe(on_ack, failures.append)
    orders = _orders(messages, customers, 7)
    # The first order opens the producer's socket: a server that cannot be reached or refuses
    # ends the demo here, at once, with its error.
    producer.send(next(orders))
    with pipeline:
        try:
            run.sender = threading.Thread(
                target=lambda: rx.from_iterable(_until(orders, run.stop)).subscribe(producer),
                name="rxstargate-demo-producer",
                daemon=True,
            )
            run.sender.start()
            _follow(pipeline, messages, done, state, show, failures)
            run.sender.join(timeout=30)
        except BaseException:
            run.quiet()
            raise
    seconds = time.monotonic() - started
    samples = latencies or [0.0]
    cuts = statistics.quantiles(samples, n=100) if len(samples) > 1 else samples * 99
    summary = DemoSummary(
        messages=len(latencies),
        seconds=seconds,
        throughput=len(latencies) / seconds if seconds else 0.0,
        latency_ms=(cuts[49], cuts[94], cuts[98]),
        redeliveries=state["redeliveries"],
        peak_in_flight=state["peak"],
        out_of_order=state["out_of_order"],
    )
    if show:
        _print_summary(summary)
    return summary


def _until(orders: Iterator[rs.OutgoingMessage], stop: threading.Event) -> Iterator[Any]:
    for order in orders:
        if stop.is_set():
            return
        yield order


def _follow(
    pipeline: rs.Pipeline,
    messages: int,
    done: threading.Event,
    state: dict[str, int],
    show: bool,
    failures: list[Exception],
) -> None:
    """Wait for every order, tracking peak in-flight and showing progress.

    Raises:
        StargateError: what ended the pipeline or the producer for good (a refused
            handshake, a server gone for good), or a timeout.
    """
    deadline = time.monotonic() + max(60.0, messages / 200)
    progress: Any = None
    if show:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        progress.start()
        sent = progress.add_task("produced ", total=messages)
        handled = progress.add_task("processed", total=messages)
    try:
        while not done.wait(0.1):
            if progress is not None:
                progress.update(sent, completed=state["stored"])
                progress.update(handled, completed=pipeline.stats.processed)
            if pipeline.state is rs.PipelineState.FAILED and pipeline.error is not None:
                raise pipeline.error
            if failures:
                raise failures[0]
            if time.monotonic() > deadline:
                raise rs.StargateTimeoutError("the demo did not finish in time")
        if progress is not None:
            progress.update(sent, completed=messages)
            progress.update(handled, completed=messages)
    finally:
        if progress is not None:
            progress.stop()


def _print_summary(summary: DemoSummary) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rxstargate demo: orders through a key-ordered pipeline")
    table.add_column("what")
    table.add_column("value", justify="right")
    p50, p95, p99 = summary.latency_ms
    table.add_row("messages", f"{summary.messages:,}")
    table.add_row("throughput", f"{summary.throughput:,.0f} msg/s")
    table.add_row("end-to-end latency p50 / p95 / p99", f"{p50:.1f} / {p95:.1f} / {p99:.1f} ms")
    table.add_row("redeliveries", str(summary.redeliveries))
    table.add_row("peak in flight", str(summary.peak_in_flight))
    table.add_row("out of order per customer", str(summary.out_of_order))
    Console().print(table)
