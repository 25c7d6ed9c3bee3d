"""topic.consume(): a supervised pipeline that drains on stop and restarts after failures.

On MemoryPulsar; processing everything, and restarting after an outage, also against local
Pulsar.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import reactivex as rx

import rxstargate as rs
from rxstargate.testing import MemoryPulsar
from tests.client.conftest import ScriptedPeer
from tests.conftest import Backend
from tests.faults import Faults, unacked_messages

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

WAIT = 10.0


def wait_until(predicate: Any, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def test_a_pipeline_processes_everything_and_counts_it(backend: Backend, topic_name: str) -> None:
    client = backend.client()
    topic = client.topic(topic_name)
    rx.from_iterable([str(i).encode() for i in range(500)]).subscribe(topic.producer())
    handled: list[bytes] = []
    lock = threading.Lock()

    def handle(message: rs.Message[Any]) -> None:
        with lock:
            handled.append(message.payload)

    with topic.consume("work", handle, concurrency=4, start="earliest") as pipeline:
        assert pipeline.state is rs.PipelineState.RUNNING
        wait_until(lambda: pipeline.stats.processed == 500)
    assert pipeline.state is rs.PipelineState.STOPPED
    assert sorted(handled) == sorted(str(i).encode() for i in range(500))
    assert pipeline.stats.in_flight == 0
    assert unacked_messages(client, topic_name, "work", "Shared") == []


def test_stop_drains_in_flight_work_and_loses_nothing(client: rs.Client, topic_name: str) -> None:
    topic = client.topic(topic_name)
    rx.from_iterable([str(i).encode() for i in range(200)]).subscribe(topic.producer())
    handled: set[bytes] = set()
    started = threading.Event()

    def slow(message: rs.Message[Any]) -> None:
        started.set()
        time.sleep(0.02)
        handled.add(message.payload)

    pipeline = topic.consume("work", slow, concurrency=4, max_in_flight=20, start="earliest")
    pipeline.start()
    assert started.wait(WAIT)
    pipeline.stop(timeout=WAIT)
    assert pipeline.stats.in_flight == 0  # what was taken was finished and settled
    assert pipeline.stats.processed == len(handled)
    # What was not handled before the stop is redelivered to the next consumer.
    rest = unacked_messages(client, topic_name, "work", "Shared")
    assert handled | {m.payload for m in rest} == {str(i).encode() for i in range(200)}


def test_a_pipeline_restarts_after_its_stream_fails_for_a_retriable_reason(
    backend: Backend, faults: Faults, topic_name: str
) -> None:
    quick = rs.Backoff(initial=0.01, cap=0.02, give_up_after=0.05)
    with faults.client(reconnect=quick) as client, backend.client() as direct:
        topic = client.topic(topic_name)
        handled: list[bytes] = []
        pipeline = topic.consume(
            "work",
            lambda m: handled.append(m.payload),
            # A restart that comes before the refusals end is refused and tried again later.
            restart=rs.Backoff(initial=0.05, cap=0.2),
            start="earliest",  # start() does not wait for the subscription: "before" may be first
        ).start()
        producer = direct.topic(topic_name).producer()
        producer.send(b"before")
        wait_until(lambda: handled == [b"before"])
        faults.refuse()
        faults.reset()  # the consumer gives up reconnecting: the pipeline restarts it later
        wait_until(lambda: pipeline.state is rs.PipelineState.RESTARTING)
        faults.refuse(False)
        wait_until(lambda: pipeline.restarts >= 1 and pipeline.state is rs.PipelineState.RUNNING)
        producer.send(b"after")
        wait_until(lambda: b"after" in handled)
        pipeline.stop()
    assert pipeline.restarts >= 1


def test_a_pipeline_fails_for_good_on_a_refusal_retrying_cannot_fix() -> None:
    with (
        ScriptedPeer(lambda ws: None, refuse=(403, "Not authorized")) as peer,
        rs.Client(peer.url) as client,
    ):
        pipeline = client.topic("t").consume("work", print)
        pipeline.start()
        with pytest.raises(rs.AuthorizationError):
            pipeline.wait(WAIT)
        assert pipeline.state is rs.PipelineState.FAILED


def test_stop_keeps_the_socket_until_in_flight_work_is_settled(
    client: rs.Client, topic_name: str
) -> None:
    topic = client.topic(topic_name)
    rx.from_iterable([str(i).encode() for i in range(100)]).subscribe(topic.producer())
    lost: list[rs.StargateError] = []
    client.errors.subscribe(lost.append)
    started = threading.Event()

    def slow(message: rs.Message[Any]) -> None:
        started.set()
        time.sleep(0.05)

    pipeline = topic.consume("work", slow, concurrency=8, max_in_flight=8, start="earliest")
    pipeline.start()
    assert started.wait(WAIT)
    pipeline.stop(timeout=WAIT)
    processed = pipeline.stats.processed
    assert processed >= 1 and pipeline.stats.in_flight == 0
    assert [e for e in lost if isinstance(e, rs.AckError)] == []  # every ack reached its socket
    rest = unacked_messages(client, topic_name, "work", "Shared")
    assert len(rest) == 100 - processed  # nothing processed comes back


def test_closing_the_client_starts_no_call_that_had_not_started(
    memory: MemoryPulsar, topic_name: str
) -> None:
    with memory.client() as producing:
        rx.from_iterable([str(i).encode() for i in range(20)]).subscribe(
            producing.topic(topic_name).producer()
        )
    client = memory.client()
    release = threading.Event()
    lock = threading.Lock()
    started: list[bytes] = []

    def handle(message: rs.Message[Any]) -> None:
        with lock:
            started.append(message.payload)
        release.wait(WAIT)

    pipeline = client.topic(topic_name).consume(
        "work", handle, concurrency=2, max_in_flight=10, start="earliest"
    )
    pipeline.start()
    wait_until(lambda: len(started) == 2 and pipeline.stats.received == 10)  # 8 queued
    client.close()
    release.set()
    pipeline.wait(WAIT)
    assert pipeline.state is rs.PipelineState.STOPPED
    assert len(started) == 2  # the queued ones could not be acked any more: never started
    assert pipeline.stats.in_flight == 0
    rest = {m.payload for m in unacked_messages(memory.client(), topic_name, "work", "Shared")}
    assert {str(i).encode() for i in range(20)} - set(started) <= rest  # all redelivered
