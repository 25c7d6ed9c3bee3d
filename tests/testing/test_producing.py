"""Producers on MemoryPulsar: what is stored, acks, send errors, lost frames and resends."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import reactivex as rx
from reactivex.testing import TestScheduler

import rxstargate as rs
from rxstargate.testing import MemoryPulsar


def test_a_sent_message_is_stored_with_every_field(
    pulsar: MemoryPulsar, client: rs.Client, scheduler: TestScheduler
) -> None:
    scheduler.advance_to(1_700_000_000.0)
    when = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    ack = (
        client.topic("orders")
        .producer()
        .send(b"\x00body", key="k", properties={"a": "b", "ü": "ß"}, event_time=when)
    )
    (stored,) = pulsar.stored("orders")
    assert ack.ok and ack.message_id == stored.message_id
    assert (stored.payload, stored.key, dict(stored.properties)) == (
        b"\x00body",
        "k",
        {"a": "b", "ü": "ß"},
    )
    assert stored.event_time == when
    assert stored.publish_time == datetime.fromtimestamp(1_700_000_000, UTC)
    assert stored.topic == rs.TopicName.parse("persistent://public/default/orders")


def test_ids_come_in_topic_order_from_the_topics_own_ledger(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    producer = client.topic("orders").producer()
    acks = [producer.send(str(i).encode()) for i in range(3)]
    other = client.topic("refunds").producer().send(b"r")
    ids = [a.message_id for a in acks]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert all(i is not None and i.entry_id == n for n, i in enumerate(ids))
    assert other.message_id is not None and ids[0] is not None
    assert other.message_id.ledger_id != ids[0].ledger_id
    assert ids[0] == rs.MessageId.from_parts(ids[0].ledger_id, 0)


def test_pipelined_sends_are_stored_in_order_with_one_ack_each(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    producer = client.topic("orders").producer(max_in_flight=10)
    acks: list[rs.ProducerAck] = []
    done = threading.Event()
    producer.acks.subscribe(acks.append, on_completed=done.set)
    rx.from_iterable(str(i).encode() for i in range(200)).subscribe(producer)
    assert done.wait(10)
    assert [m.payload for m in pulsar.stored("orders")] == [str(i).encode() for i in range(200)]
    assert [a.context for a in acks] == [str(i) for i in range(1, 201)]


def test_publish_stores_as_a_producer_would(pulsar: MemoryPulsar) -> None:
    first = pulsar.publish("orders", b"x", key="k", properties={"a": "b"})
    second = pulsar.publish("persistent://public/default/orders", "text")
    assert [m.message_id for m in pulsar.stored("orders")] == [first, second]
    assert pulsar.stored("orders")[1].payload == b"text"
    assert pulsar.topics() == ["persistent://public/default/orders"]


def test_a_failed_send_is_a_send_error_and_nothing_is_stored(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    producer = client.topic("orders").producer()
    pulsar.fail_next_send("orders", error="Failed to send message: TopicTerminated")
    with pytest.raises(rs.SendError) as caught:
        producer.send(b"lost")
    assert caught.value.result == "send-error:8"
    assert "TopicTerminated" in str(caught.value)
    assert producer.send(b"kept").ok
    assert [m.payload for m in pulsar.stored("orders")] == [b"kept"]


def test_a_send_failure_armed_for_another_topic_leaves_this_one_alone(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    pulsar.fail_next_send("refunds")
    assert client.topic("orders").producer().send(b"x").ok
    with pytest.raises(rs.SendError):
        client.topic("refunds").producer().send(b"y")


def test_a_producer_name_in_use_is_refused_with_409(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    topic = client.topic("orders")
    topic.producer(producer_name="alice").send(b"x")
    with pytest.raises(rs.ConflictError) as caught:
        topic.producer(producer_name="alice").send(b"y")
    assert caught.value.status_code == 409
    assert "already connected" in caught.value.reason
    assert topic.producer(producer_name="bob").send(b"z").ok


def test_an_ack_lost_in_a_cut_makes_the_producer_resend_with_the_same_context(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    producer = client.topic("orders").producer()
    assert producer.send(b"before").ok
    pulsar.drop_next("ack", topic="orders")
    ack = producer.send(b"twice")
    assert ack.ok and ack.context == "2"
    # Stored once before the cut, and again when resent: at least once, as Pulsar.
    assert [m.payload for m in pulsar.stored("orders")] == [b"before", b"twice", b"twice"]
    assert ack.message_id == pulsar.stored("orders")[2].message_id


def test_a_send_lost_in_a_cut_is_resent_and_stored_once(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    producer = client.topic("orders").producer()
    producer.send(b"connect")
    pulsar.drop_next("send", topic="orders")
    assert producer.send(b"once").ok
    assert [m.payload for m in pulsar.stored("orders")] == [b"connect", b"once"]


def test_pending_sends_survive_a_cut(pulsar: MemoryPulsar, client: rs.Client) -> None:
    producer = client.topic("orders").producer(max_in_flight=50)
    acks: list[rs.ProducerAck] = []
    done = threading.Event()
    producer.acks.subscribe(acks.append, on_completed=done.set)
    for i in range(100):
        producer.on_next(str(i).encode())
        if i in (30, 70):
            pulsar.cut()
    producer.on_completed()
    assert done.wait(10)
    assert {a.context for a in acks if a.ok} == {str(i) for i in range(1, 101)}
    assert {m.payload for m in pulsar.stored("orders")} == {str(i).encode() for i in range(100)}


def test_a_frame_over_pulsars_limit_closes_the_socket_for_good(pulsar: MemoryPulsar) -> None:
    client = pulsar.client(max_send_bytes=4 * 1024 * 1024)
    producer = client.topic("orders").producer()
    acks: list[rs.ProducerAck] = []
    producer.acks.subscribe(acks.append, lambda error: None)
    producer.on_next(b"x" * (1024 * 1024))
    pulsar.wait_until(lambda: bool(acks))
    assert acks[0].result == rs.ClientResult.CLOSED
    assert "1009" in (acks[0].error_message or "")
    assert pulsar.stored("orders") == []
