"""One TestScheduler for MemoryPulsar, the operators and topic.consume: minutes pass in a test
that sleeps nowhere."""

from __future__ import annotations

from typing import Any

from reactivex.testing import TestScheduler

import rxstargate as rs
from rxstargate import operators as rso
from rxstargate.testing import MemoryPulsar
from tests.testing.conftest import Inbox


def test_a_retrying_consume_pipeline_waits_its_delays_in_virtual_time(
    pulsar: MemoryPulsar, client: rs.Client, scheduler: TestScheduler
) -> None:
    calls: list[float] = []

    def charge(message: rs.Message[Any]) -> str:
        calls.append(scheduler.clock)
        if len(calls) < 3:
            raise ConnectionError("payment service down")
        return "charged"

    pulsar.publish("orders", b"order-1")
    retry = rso.Retry(attempts=5, initial=30.0, factor=2.0, cap=300.0, jitter=0.0)
    pipeline = client.topic("orders").consume(
        "billing", charge, retry=retry, scheduler=scheduler, start="earliest"
    )
    with pipeline:
        pulsar.wait_until(lambda: pulsar.backlog("orders", "billing") == 0)
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 30.0 and calls[2] - calls[1] >= 60.0
    assert (pipeline.stats.retried, pipeline.stats.processed, pipeline.stats.failed) == (2, 1, 0)
    assert pipeline.state is rs.PipelineState.STOPPED


def test_retries_nack_delays_and_dead_letters_share_one_virtual_clock(
    pulsar: MemoryPulsar, client: rs.Client, scheduler: TestScheduler
) -> None:
    attempts: list[tuple[int, float]] = []

    def always_fails(message: rs.Message[Any]) -> None:
        attempts.append((message.redelivery_count, scheduler.clock))
        raise ConnectionError("never works")

    pulsar.publish("orders", b"poison")
    client.topic("orders").observe(
        "billing",
        start="earliest",
        subscription_type="Shared",
        negative_ack_redelivery_delay=60_000,
        max_redeliver_count=1,
    ).pipe(
        rso.process(
            always_fails,
            retry=rso.Retry(attempts=2, initial=5.0, jitter=0.0),
            scheduler=scheduler,
        )
    ).subscribe(rs.acknowledger())
    pulsar.wait_until(lambda: bool(pulsar.stored("orders-billing-DLQ")))
    # Each delivery is tried twice, 5 s apart, then nacked; the broker sends it again after
    # 60 s; after one redelivery it goes to the dead-letter topic.
    assert [count for count, _ in attempts] == [0, 0, 1, 1]
    assert attempts[1][1] - attempts[0][1] >= 5.0
    assert attempts[2][1] - attempts[1][1] >= 60.0
    assert pulsar.backlog("orders", "billing") == 0


def test_a_batch_is_cut_by_its_max_wait_in_virtual_time(
    pulsar: MemoryPulsar, client: rs.Client, scheduler: TestScheduler
) -> None:
    for i in range(3):
        pulsar.publish("orders", str(i).encode())
    batches: list[rso.Batch[Any]] = []
    client.topic("orders").observe("sub", start="earliest").pipe(
        rso.batch(100, 120.0, scheduler=scheduler)
    ).subscribe(lambda group: (batches.append(group), group.ack()))
    pulsar.wait_until(lambda: pulsar.backlog("orders", "sub") == 0)
    assert [[m.payload for m in b.messages] for b in batches] == [[b"0", b"1", b"2"]]
    assert scheduler.clock >= 120.0


def test_an_ack_timeout_of_ten_minutes_passes_in_virtual_time(
    pulsar: MemoryPulsar, client: rs.Client, scheduler: TestScheduler
) -> None:
    pulsar.publish("orders", b"late")
    inbox = Inbox()
    client.topic("orders").observe(
        "sub", start="earliest", subscription_type="Shared", ack_timeout_millis=600_000
    ).subscribe(inbox)
    pulsar.wait_until(lambda: len(inbox) == 2)  # ten virtual minutes later, it came again
    assert scheduler.clock >= 600.0
    assert [m.redelivery_count for m in inbox.messages] == [0, 1]
