"""``rxstargate run`` against local Pulsar: worker processes sharing a Key_Shared subscription,
bridging a topic to another, drained on SIGTERM, restarted after SIGKILL, counted on one port.

Slow by nature (2 to 10 s each): every test starts a supervisor and its worker processes, each
of which imports rxstargate and joins the subscription before a message flows.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import reactivex as rx
from reactivex import operators as ops

import rxstargate as rs
from tests.faults import unacked_messages
from tests.service.conftest import WAIT, Service, bridge_app, until

pytestmark = pytest.mark.integration

KEYS = 12


def produce(ws_url: str, topic: str, payloads: list[str]) -> None:
    """Send each ``key:sequence`` payload with its key, and wait for every ack."""
    with rs.Client(ws_url) as client:
        producer = client.topic(topic).producer()
        outgoing = [rs.OutgoingMessage(p.encode(), key=p.split(":")[0]) for p in payloads]
        rx.from_iterable(outgoing).subscribe(producer)
        producer.flush(WAIT)


def keyed(count: int, first: int = 0) -> list[str]:
    return [f"k{i % KEYS}:{i}" for i in range(first, first + count)]


def outputs(ws_url: str, topic: str, expected: set[str]) -> list[rs.Message[Any]]:
    """The output topic's messages, from the first, until every payload expected was seen."""
    seen: set[str] = set()

    def missing(message: rs.Message[Any]) -> bool:
        seen.add(message.payload.decode())
        return not expected <= seen

    with rs.Client(ws_url) as client:
        messages: list[rs.Message[Any]] = (
            client.topic(topic)
            .observe(start="earliest")
            .pipe(ops.take_while(missing, inclusive=True), ops.to_list(), ops.timeout(WAIT))
            .run()
        )
    return messages


def everything(ws_url: str, topic: str) -> list[rs.Message[Any]]:
    """Every message of ``topic`` now: those before a sentinel sent after them."""
    with rs.Client(ws_url) as client:
        client.topic(topic).producer().send(b"sentinel")
        messages: list[rs.Message[Any]] = (
            client.topic(topic)
            .observe(start="earliest")
            .pipe(
                ops.take_while(lambda m: m.payload != b"sentinel"),
                ops.to_list(),
                ops.timeout(WAIT),
            )
            .run()
        )
    return messages


def first_outputs_in_key_order(messages: list[rs.Message[Any]]) -> dict[str, list[int]]:
    """Per key, the input sequence numbers in the order of their first outputs."""
    order: dict[str, list[int]] = defaultdict(list)
    seen: set[bytes] = set()
    for message in messages:
        if message.payload not in seen:
            seen.add(message.payload)
            key, sequence = message.payload.decode().split(":")
            order[key].append(int(sequence))
    return order


@dataclass
class BridgeRun:
    """What one run of two bridging workers showed, from its start to its exit."""

    payloads: list[str]
    health: tuple[int, str]
    metrics: str  # /metrics once every message was counted ("" without prometheus_client)
    outputs: list[rs.Message[Any]]  # the output topic, from the first until all were seen
    stored: list[rs.Message[Any]]  # the output topic, all of it, after the metrics were read
    status: int  # the exit status after SIGTERM
    log: str
    unacked: list[rs.Message[Any]]  # what the subscription held after the exit


PROCESSED = "rxstargate_processed_total[('consumer', 'bridge')]"
ACKS = "rxstargate_producer_acks_total[('producer', 'out')]"


def metric_samples(text: str) -> dict[str, float]:
    """The samples of a /metrics text by name and sorted labels."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# The tests of one bridging run (it starts three processes and bridges 600 messages) share it.
@pytest.fixture(scope="module")
def bridge_run(pulsar: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeRun]:
    source = f"persistent://public/default/bridge-run-{uuid.uuid4().hex[:8]}"
    target = source + "-out"
    app = bridge_app(tmp_path_factory.mktemp("bridge") / "app.toml", pulsar.ws_url, source, target)
    run = Service(str(app), "--processes", "2", "--metrics-port", "0")
    try:
        health = run.get("/healthz")
        run.wait_ready()  # both consumers joined: no key moves while the messages flow
        payloads = keyed(600)
        produce(pulsar.ws_url, source, payloads)
        messages = outputs(pulsar.ws_url, target, set(payloads))
        metrics = ""
        if importlib.util.find_spec("prometheus_client") is not None:

            def counted() -> bool:
                nonlocal metrics
                status, metrics = run.get("/metrics")
                assert status == 200, metrics
                samples = metric_samples(metrics)
                done = samples.get(PROCESSED, 0) >= len(payloads)
                return done and samples.get(ACKS) == samples.get(PROCESSED)

            until(counted, "every message counted")
        stored = everything(pulsar.ws_url, target)
        run.signal(signal.SIGTERM)
        status = run.wait()
        keys = {p.split(":")[0] for p in payloads}
        unacked = unacked_messages(pulsar.ws_url, source, "bridge", "Key_Shared", keys)
        yield BridgeRun(payloads, health, metrics, messages, stored, status, run.log(), unacked)
    finally:
        run.close()


# The first test that asks for the run waits for all of it (5 to 20 s, with a loaded machine).
@pytest.mark.xdist_group("bridge-run")
@pytest.mark.timeout(60)
def test_two_workers_bridge_every_message_once_in_effect_keeping_each_key_in_order(
    bridge_run: BridgeRun,
) -> None:
    messages = bridge_run.outputs
    assert {m.payload.decode() for m in messages} == set(bridge_run.payloads)
    by_key = first_outputs_in_key_order(messages)
    assert all(sequence == sorted(sequence) for sequence in by_key.values()), by_key
    workers = {m.properties["pid"] for m in messages}
    assert len(workers) == 2  # the subscription spread over both processes

    assert bridge_run.status == 0, bridge_run.log
    assert bridge_run.unacked == []


@pytest.mark.xdist_group("bridge-run")
@pytest.mark.timeout(60)  # as above
def test_the_metrics_port_counts_every_worker_together(bridge_run: BridgeRun) -> None:
    pytest.importorskip("prometheus_client.parser")
    assert bridge_run.health == (200, "ok\n")
    figures = metric_samples(bridge_run.metrics)
    stored = bridge_run.stored
    assert {m.payload.decode() for m in stored} == set(bridge_run.payloads)
    assert figures[PROCESSED] == figures[ACKS] == len(stored)
    assert figures["rxstargate_handler_seconds_count[('consumer', 'bridge')]"] == len(stored)
    assert figures["rxstargate_connected[('kind', 'consumer'), ('stream', 'bridge')]"] == 2
    assert figures["rxstargate_worker_processes[]"] == 2
    assert figures["rxstargate_ready[]"] == 1
    assert bridge_run.status == 0, bridge_run.log


def test_sigterm_drains_work_in_flight_and_leaves_nothing_unacked(
    pulsar: Any, topic_name: str, tmp_path: Path, service: Callable[..., Service]
) -> None:
    target = topic_name + "-out"
    app = bridge_app(tmp_path / "app.toml", pulsar.ws_url, topic_name, target)
    run = service(str(app), "--processes", "2", env={"BRIDGE_MARKERS": str(tmp_path)})
    payloads = [*keyed(300), "hold-drain:0", *keyed(300, first=300)]
    produce(pulsar.ws_url, topic_name, payloads)
    until((tmp_path / "draining").exists, "the held message to be in the handler")

    run.signal(signal.SIGTERM)
    holder = int((tmp_path / "draining").read_text())
    run.event("stopping", pid=holder)  # its worker drains: it takes nothing new
    (tmp_path / "release").touch()  # the held call returns, its output is sent, it is acked
    assert run.wait() == 0, run.log()

    keys = {p.split(":")[0] for p in payloads}
    left = unacked_messages(pulsar.ws_url, topic_name, "bridge", "Key_Shared", keys)
    bridged = {m.payload.decode() for m in everything(pulsar.ws_url, target)}
    assert "hold-drain:0" in bridged
    assert bridged | {m.payload.decode() for m in left} == set(payloads)
    assert bridged & {m.payload.decode() for m in left} == set()  # none bridged and unacked


def test_a_worker_killed_with_sigkill_is_restarted_and_its_messages_go_to_the_others(
    pulsar: Any, topic_name: str, tmp_path: Path, service: Callable[..., Service]
) -> None:
    target = topic_name + "-out"
    app = bridge_app(tmp_path / "app.toml", pulsar.ws_url, topic_name, target)
    run = service(
        str(app), "--processes", "2", "--metrics-port", "0", env={"BRIDGE_MARKERS": str(tmp_path)}
    )
    run.wait_ready()
    payloads = [*keyed(200), "hold-kill:0", *keyed(200, first=200)]
    produce(pulsar.ws_url, topic_name, payloads)
    until((tmp_path / "held").exists, "a worker to hold a message")
    victim = int((tmp_path / "held").read_text())
    worker = run.event("worker-started", worker_pid=victim)["worker"]

    os.kill(victim, signal.SIGKILL)
    died = run.event("worker-died", worker=worker)
    assert "SIGKILL" in died["message"]
    restarted = run.wait_for(
        lambda r: (
            r.get("event") == "worker-started"
            and r.get("worker") == worker
            and r.get("worker_pid") != victim
        ),
        "the worker restarted",
    )
    messages = outputs(pulsar.ws_url, target, set(payloads))
    held = [m for m in messages if m.payload == b"hold-kill:0"]
    assert held and all(int(m.properties["pid"]) != victim for m in held)
    assert {m.payload.decode() for m in messages} == set(payloads)
    run.signal(signal.SIGTERM)
    assert run.wait() == 0, run.log()
    assert restarted["worker_pid"] != victim


def test_a_second_signal_exits_at_once_without_waiting_for_the_drain(
    pulsar: Any, topic_name: str, tmp_path: Path, service: Callable[..., Service]
) -> None:
    app = bridge_app(tmp_path / "app.toml", pulsar.ws_url, topic_name, topic_name + "-out")
    run = service(str(app), "--drain-timeout", "60", env={"BRIDGE_MARKERS": str(tmp_path)})
    produce(pulsar.ws_url, topic_name, ["hold-drain:0"])
    until((tmp_path / "draining").exists, "the held message to be in the handler")
    run.signal(signal.SIGTERM)
    run.event("stopping")  # draining, and the held call will not return on its own
    run.signal(signal.SIGTERM)
    assert run.wait() == 128 + signal.SIGTERM
    assert run.event("exit")["signal"] == "SIGTERM"


def test_sigterm_while_the_workers_start_is_a_clean_stop(
    pulsar: Any, topic_name: str, tmp_path: Path, service: Callable[..., Service]
) -> None:
    app = bridge_app(tmp_path / "app.toml", pulsar.ws_url, topic_name, topic_name + "-out")
    run = service(str(app), "--processes", "2")
    run.event("worker-started", worker=2)  # the workers are still importing their app
    run.signal(signal.SIGTERM)
    assert run.wait() == 0, run.log()
