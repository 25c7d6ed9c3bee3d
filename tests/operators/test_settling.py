"""filter, batch and the stall watchdog on a consumer: no credit leaks, no deadlock.

On MemoryPulsar; process, batch and the acknowledger together also against local Pulsar.
"""

from __future__ import annotations

import threading

import pytest
import reactivex as rx
from reactivex import operators as ops

import rxstargate as rs
from rxstargate import operators as rso
from tests.conftest import Backend

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

WAIT = 10.0


def fill(topic: rs.Topic, count: int) -> None:
    rx.from_iterable([str(i).encode() for i in range(count)]).subscribe(topic.producer())


def test_a_settling_filter_never_stalls_the_stream(client: rs.Client, topic_name: str) -> None:
    topic = client.topic(topic_name)
    fill(topic, 300)
    kept = (
        topic.observe("sub", start="earliest", max_in_flight=10)
        .pipe(
            rso.filter(lambda m: int(m.payload) % 10 == 0),
            ops.do(rs.acknowledger()),
            ops.take(30),
            ops.map(lambda m: int(m.payload)),
            ops.to_list(),
            ops.timeout(WAIT),
        )
        .run()
    )
    assert kept == list(range(0, 300, 10))


def test_a_batch_larger_than_max_in_flight_is_cut_instead_of_deadlocking(
    client: rs.Client, topic_name: str
) -> None:
    topic = client.topic(topic_name)
    fill(topic, 200)
    sizes: list[int] = []
    got = (
        topic.observe("sub", start="earliest", max_in_flight=50)
        .pipe(
            rso.batch(64, 30.0, lambda messages: sizes.append(len(messages))),
            ops.do(rs.acknowledger()),
            ops.flat_map(lambda group: [int(m.payload) for m in group.messages]),
            ops.take(200),
            ops.to_list(),
            ops.timeout(WAIT),
        )
        .run()
    )
    assert sorted(got) == list(range(200))
    assert max(sizes) <= 50  # cut when the stream held all its credit, not at 64


def test_the_watchdog_reports_a_stage_that_neither_settles_nor_passes_on(
    client: rs.Client, topic_name: str
) -> None:
    topic = client.topic(topic_name)
    fill(topic, 20)
    reported = threading.Event()
    stalls: list[rs.StalledStreamError] = []

    def on_error(error: rs.StargateError) -> None:
        if isinstance(error, rs.StalledStreamError):
            stalls.append(error)
            reported.set()

    client.errors.subscribe(on_error)
    stream = topic.observe("sub", start="earliest", max_in_flight=5, stall_timeout=0.1)
    handle = stream.pipe(ops.filter(lambda m: False)).subscribe(rs.acknowledger())
    assert reported.wait(WAIT)
    handle.dispose()
    assert stalls[0].held == 5
    assert "filter that drops without acking" in str(stalls[0])


def test_process_then_batch_then_the_acknowledger_settles_everything(
    backend: Backend, topic_name: str
) -> None:
    topic = backend.client().topic(topic_name)
    fill(topic, 100)
    sizes: list[int] = []
    errors: list[Exception] = []
    done = threading.Event()
    sink = rs.acknowledger(on_error=errors.append)

    def bulk(items: list[object]) -> int:
        sizes.append(len(items))
        return len(items)

    def settle(group: rso.Batch[object]) -> None:
        sink.on_next(group)  # a Batch of Processed items
        if sink.acked + sink.failed + len(errors) >= 100:
            done.set()

    handle = (
        topic.observe("sub", start="earliest", max_in_flight=10)
        # max_wait cuts only the last group: the others are cut when all credit is held
        .pipe(rso.process(lambda m: int(m.payload), concurrency=4), rso.batch(50, 0.05, bulk))
        .subscribe(settle, errors.append)
    )
    assert done.wait(WAIT)
    handle.dispose()
    assert errors == [] and sink.acked == 100 and sink.failed == 0
    assert sum(sizes) == 100 and max(sizes) <= 10  # cut when the stream held all its credit
