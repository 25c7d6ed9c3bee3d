"""process + publish + dead letters: at least once, end to end.

On MemoryPulsar; a bridge, and a bridge through resets, also against local Pulsar.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import reactivex as rx
from reactivex import operators as ops

import rxstargate as rs
from rxstargate import operators as rso
from tests.conftest import Backend
from tests.faults import Faults, unacked_messages

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

WAIT = 15.0
FAST = rs.Backoff(initial=0.01, cap=0.3, give_up_after=30.0)


def read_until_sentinel(client: rs.Client, topic: str) -> list[rs.Message[Any]]:
    """Every message of ``topic`` before a sentinel sent now."""
    target = client.topic(topic)
    target.producer().send(b"sentinel")
    messages: list[rs.Message[Any]] = (
        target.observe(start="earliest")
        .pipe(ops.take_while(lambda m: m.payload != b"sentinel"), ops.to_list(), ops.timeout(WAIT))
        .run()
    )
    return messages


def test_a_bridge_stores_every_input_and_acks_it_after_its_output(
    backend: Backend, topic_name: str
) -> None:
    client = backend.client()
    source, target = client.topic(topic_name), client.topic(topic_name + "-out")
    rx.from_iterable(
        [rs.OutgoingMessage(str(i).encode(), key=f"k{i % 3}") for i in range(2000)]
    ).subscribe(source.producer())
    done = threading.Event()
    sink = rs.acknowledger()
    source.observe("bridge", start="earliest", max_in_flight=500).pipe(
        rso.process(lambda m: m.payload.upper() + b"!"),
        rso.publish(target.producer(max_in_flight=500)),
        ops.take(2000),
    ).subscribe(sink.on_next, sink.on_error, done.set)
    assert done.wait(WAIT)
    outputs = read_until_sentinel(client, topic_name + "-out")
    assert sorted(int(m.payload[:-1]) for m in outputs) == list(range(2000))
    assert {m.key for m in outputs} == {"k0", "k1", "k2"}
    assert sink.acked == 2000


def test_a_bridge_through_resets_stores_every_input_at_least_once(
    backend: Backend, faults: Faults, topic_name: str
) -> None:
    count = 3000
    with backend.client() as setup:
        rx.from_iterable([str(i).encode() for i in range(count)]).subscribe(
            setup.topic(topic_name).producer()
        )
    seen = 0
    lock = threading.Lock()

    def cut_now_and_then(message: rs.Message[Any]) -> bytes:
        nonlocal seen
        with lock:
            seen += 1
            if seen in (700, 1600, 2400):
                faults.reset()
        return message.payload

    with faults.client(reconnect=FAST) as client:
        source, target = client.topic(topic_name), client.topic(topic_name + "-out")
        stored: set[bytes] = set()
        enough = threading.Event()

        def stored_one(item: Any) -> None:
            stored.add(item.message.payload)
            if len(stored) == count:
                enough.set()

        handle = (
            source.observe("bridge", start="earliest", max_in_flight=200)
            .pipe(
                rso.process(cut_now_and_then),
                rso.publish(target.producer(max_in_flight=200)),
                ops.do(rs.acknowledger()),
            )
            .subscribe(stored_one)
        )
        assert enough.wait(WAIT)
        handle.dispose()
    with backend.client() as check:
        outputs = {m.payload for m in read_until_sentinel(check, topic_name + "-out")}
        assert outputs == {str(i).encode() for i in range(count)}
        assert unacked_messages(check, topic_name, "bridge") == []


def test_a_poison_message_is_dead_lettered_while_the_others_flow(
    client: rs.Client, topic_name: str
) -> None:
    topic = client.topic(topic_name)
    rx.from_iterable([b"a", b"poison", b"b", b"c"]).subscribe(topic.producer())
    dlq = client.topic(topic_name + "-dlq").producer()

    def handle(message: rs.Message[Any]) -> bytes:
        if message.payload == b"poison":
            raise ValueError("cannot digest")
        return message.payload

    stats = rso.ProcessingStats()
    results: list[bytes] = []

    def collect(item: rso.Processed[Any]) -> None:
        results.append(item.result)

    handle_ = (
        topic.observe("sub", start="earliest")
        .pipe(
            rso.process(
                handle,
                retry=rso.Retry(attempts=2, initial=0.01),
                on_failure=rso.dead_letter(dlq),
                stats=stats,
            ),
            ops.do(rs.acknowledger()),
        )
        .subscribe(collect)
    )
    deadline = time.monotonic() + WAIT
    while not (len(results) == 3 and stats.dead_lettered == 1) and time.monotonic() < deadline:
        time.sleep(0.005)  # dead-lettering ends with the copy's ack: nothing to wait on
    handle_.dispose()
    assert results == [b"a", b"b", b"c"]
    (letter,) = read_until_sentinel(client, topic_name + "-dlq")
    assert letter.payload == b"poison"
    assert letter.properties["rxstargate-error"] == "cannot digest"
    assert letter.properties["rxstargate-attempts"] == "2"
    assert letter.properties["rxstargate-source-topic"] == topic_name
    assert stats.retried == 1 and stats.failed == 1


def test_a_nacked_poison_message_reaches_the_brokers_dead_letter_topic(
    client: rs.Client, topic_name: str
) -> None:
    topic = client.topic(topic_name)
    rx.from_iterable([b"poison", b"fine"]).subscribe(topic.producer())
    results: list[bytes] = []
    stream = topic.observe(
        "sub",
        subscription_type="Shared",
        start="earliest",
        max_redeliver_count=2,
        negative_ack_redelivery_delay=10,
    )

    def handle(message: rs.Message[Any]) -> bytes:
        if message.payload == b"poison":
            raise ValueError("always")
        results.append(message.payload)
        return message.payload

    handle_ = stream.pipe(rso.process(handle)).subscribe(rs.acknowledger())
    dead = (
        client.topic(f"{topic_name}-sub-DLQ")
        .observe("check", start="earliest")
        .pipe(ops.first(), ops.timeout(WAIT))
        .run()
    )
    handle_.dispose()
    assert dead.payload == b"poison"
    assert results == [b"fine"]


def test_a_payload_that_fails_the_schema_follows_the_process_failure_policy(
    client: rs.Client, topic_name: str
) -> None:
    from marshmallow import Schema, fields

    class Order(Schema):
        id = fields.Integer(required=True)

    topic = client.topic(topic_name)
    rx.from_iterable([b'{"id": 1}', b"not json", b'{"id": "x"}', b'{"id": 2}']).subscribe(
        topic.producer()
    )
    dlq = client.topic(topic_name + "-dlq").producer()
    stats = rso.ProcessingStats()
    handled = (
        topic.observe("sub", start="earliest", schema=Order(), schema_failures="deliver")
        .pipe(
            rso.process(lambda m: m.value["id"], on_failure=rso.dead_letter(dlq), stats=stats),
            ops.do(rs.acknowledger()),
            ops.map(lambda p: p.result),
            ops.take(2),
            ops.to_list(),
            ops.timeout(WAIT),
        )
        .run()
    )
    assert handled == [1, 2]
    deadline = time.monotonic() + WAIT
    while stats.dead_lettered < 2 and time.monotonic() < deadline:
        time.sleep(0.005)  # dead-lettering ends with the copy's ack: nothing to wait on
    letters = read_until_sentinel(client, topic_name + "-dlq")
    assert sorted(m.payload for m in letters) == [b"not json", b'{"id": "x"}']
    assert all(m.properties["rxstargate-error-type"] == "SchemaError" for m in letters)


def test_publish_emits_downstream_off_the_producers_receive_thread(
    client: rs.Client, topic_name: str
) -> None:
    source, target = client.topic(topic_name), client.topic(topic_name + "-out")
    rx.from_iterable([str(i).encode() for i in range(20)]).subscribe(source.producer())
    threads: set[str] = set()
    done = threading.Event()

    def on_item(message: rs.Message[Any]) -> None:
        threads.add(threading.current_thread().name)

    producer = target.producer()
    handle = (
        source.observe("bridge", start="earliest")
        .pipe(rso.publish(producer), ops.do_action(on_item), ops.take(20))
        .subscribe(rs.acknowledger(on_completed=done.set))
    )
    assert done.wait(WAIT)
    handle.dispose()
    producer.close()
    assert threads and not any(name.startswith("rxstargate-producer") for name in threads)


def test_an_exception_raised_after_publish_reaches_on_error_once(
    client: rs.Client, topic_name: str
) -> None:
    source, target = client.topic(topic_name), client.topic(topic_name + "-out")
    rx.from_iterable([str(i).encode() for i in range(20)]).subscribe(source.producer())
    seen: list[bytes] = []
    errors: list[Exception] = []
    ended = threading.Event()
    boom = RuntimeError("my callback failed")

    def on_next(message: rs.Message[Any]) -> None:
        seen.append(message.payload)
        if len(seen) == 3:
            raise boom
        message.ack()

    producer = target.producer()
    source.observe("bridge", start="earliest").pipe(rso.publish(producer)).subscribe(
        on_next, lambda e: (errors.append(e), ended.set()), ended.set
    )
    assert ended.wait(WAIT)
    producer.close()
    assert errors == [boom] and len(seen) == 3
