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
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import reactivex as rx

import rxstargate as rs
from rxstargate.cli._demo_tally import DemoSummary, Tally
from rxstargate.cli._demo_view import DemoProgress, print_summary

__all__ = ["DemoSummary", "run_demo"]

#: Time a handler call spends, as a little I/O would.
_HANDLER_SECONDS = 0.0005


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
    max_in_flight: int = 500,
    show: bool = True,
) -> DemoSummary:
    """Run the demo and return its summary (printed with progress when ``show``).

    Args:
        url: a Pulsar WebSocket endpoint; None starts local Pulsar for the run.
        token: the endpoint's token, if it needs one.
        messages: how many orders.
        customers: how many distinct keys.
        concurrency: handler calls at once (orders of one customer stay in order).
        max_in_flight: the most orders the pipeline takes and has not settled (and the most
            the producer has sent and not had acknowledged).
        show: print live progress and the summary table.

    Raises:
        ConfigurationError: when a number is not positive.
        StargateError: what ended the run: a server that cannot be reached or refuses, a
            pipeline or producer that failed for good, or a timeout.

    Example:
        >>> run_demo(messages=1000, show=False).messages  # doctest: +SKIP
        1000
    """
    if min(messages, customers, concurrency, max_in_flight) < 1:
        raise rs.ConfigurationError(
            "messages, customers, concurrency and max_in_flight must be positive"
        )
    run = _Run(messages, customers, concurrency, max_in_flight)
    try:
        with _endpoint(url) as endpoint, rs.Client(endpoint, token=token) as client:
            return run.on(client, show)
    finally:
        run.end()


class _Run:
    """One run: its settings, its sender thread, and quiet logs after a failure.

    After a failure or Ctrl-C the demo's one error says it all: the sockets that then close
    under in-flight work would each log a warning, so the library's logs are dropped until
    the run has ended.
    """

    def __init__(self, messages: int, customers: int, concurrency: int, bound: int) -> None:
        self.messages = messages
        self.customers = customers
        self.concurrency = concurrency
        self.max_in_flight = bound
        self.stop = threading.Event()
        self.sender: threading.Thread | None = None
        self._quiet: contextlib.ExitStack | None = None
        # The pipeline's own "pipeline ended" record: the demo raises that error itself.
        self._pipeline_log = logging.getLogger("rxstargate.pipeline")
        self._pipeline_log.addFilter(_not_ended)

    def on(self, client: rs.Client, show: bool) -> DemoSummary:
        """Produce the orders and process them on ``client``; the summary once all are handled."""
        topic = client.topic(f"rxstargate-demo-orders-{uuid.uuid4().hex[:8]}")
        tally = Tally(self.messages)
        pipeline = topic.consume(
            "demo",
            _handler(tally),
            concurrency=self.concurrency,
            key_ordered=True,
            max_in_flight=self.max_in_flight,
            start="earliest",  # the first order is sent before the pipeline starts
        )
        tally.in_flight = lambda: pipeline.stats.in_flight
        started = time.monotonic()
        producer = topic.producer(max_in_flight=self.max_in_flight)
        producer.acks.subscribe(tally.on_ack, tally.failures.append)
        orders = _orders(self.messages, self.customers, 7)
        # The first order opens the producer's socket: a server that cannot be reached or
        # refuses ends the demo here, at once, with its error.
        producer.send(next(orders))
        with pipeline:
            try:
                self._start_sender(orders, producer)
                _follow(pipeline, tally, show)
                assert self.sender is not None
                self.sender.join(timeout=30)
            except BaseException:
                self.quiet()
                raise
        summary = tally.summary(
            time.monotonic() - started,
            max_in_flight=self.max_in_flight,
            concurrency=self.concurrency,
        )
        if show:
            print_summary(summary)
        return summary

    def _start_sender(
        self, orders: Iterator[rs.OutgoingMessage], producer: rs.Producer[Any]
    ) -> None:
        def send() -> None:
            rx.from_iterable(_until(orders, self.stop)).subscribe(producer)

        self.sender = threading.Thread(target=send, name="rxstargate-demo-producer", daemon=True)
        self.sender.start()

    def quiet(self) -> None:
        """Stop sending, and drop the library's log records until :meth:`end`."""
        self.stop.set()
        if self._quiet is None:
            from rxstargate.cli._common import quiet_logs

            self._quiet = contextlib.ExitStack()
            self._quiet.enter_context(quiet_logs())

    def end(self) -> None:
        """Stop the sender and put the logs back as they were."""
        self.stop.set()
        if self.sender is not None:
            self.sender.join(10.0)  # its producer is closed by now: it ends at once
        self._pipeline_log.removeFilter(_not_ended)
        if self._quiet is not None:
            self._quiet.close()


def _not_ended(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("pipeline ended")


def _handler(tally: Tally) -> Callable[[rs.Message[Any]], None]:
    def handle(message: rs.Message[Any]) -> None:
        started = datetime.now(UTC)
        order = json.loads(message.payload)
        time.sleep(_HANDLER_SECONDS)  # a little I/O, as a real handler would do
        tally.handled(message, order, started, datetime.now(UTC))

    return handle


def _until(orders: Iterator[rs.OutgoingMessage], stop: threading.Event) -> Iterator[Any]:
    for order in orders:
        if stop.is_set():
            return
        yield order


def _follow(pipeline: rs.Pipeline, tally: Tally, show: bool) -> None:
    """Wait for every order, showing progress.

    Raises:
        StargateError: what ended the pipeline or the producer for good (a refused
            handshake, a server gone for good), or a timeout.
    """
    deadline = time.monotonic() + max(60.0, tally.messages / 200)
    with DemoProgress(tally.messages, show=show) as progress:
        while not tally.done.wait(0.1):
            progress.update(tally.stored, pipeline.stats.processed)
            if pipeline.state is rs.PipelineState.FAILED and pipeline.error is not None:
                raise pipeline.error
            if tally.failures:
                raise tally.failures[0]
            if time.monotonic() > deadline:
                raise rs.StargateTimeoutError("the demo did not finish in time")
        progress.update(tally.messages, tally.messages)
