"""A backlog of large messages is read to the end with the client's defaults.

pulsar-lite stops dispatching to a consumer when its connection's write buffer reaches the
broker's high-water mark (64 KiB by default) while the dispatcher hands it messages, and does
not start again when the buffer drains, only on the next flow command, published message or
consumer joining or leaving. A batch of 20 messages of 256 KiB or more crossed it every time; a
consumer whose receiver queue is large sends its next flow command only after half the queue,
so it waited for good. Local Pulsar sets the mark above any batch the broker writes
(docs/local-pulsar.md): each subscription type and readers read such a backlog to the end, the
official client on the broker port too.
"""

from __future__ import annotations

import threading
from typing import Any

import pulsar as pulsar_client
import pytest

import rxstargate as rs

pytestmark = pytest.mark.integration

SIZE = 512 * 1024
COUNT = 60
WAIT = 10.0


class _Acker:
    """Acks each message as it comes and notes its payload."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.got: list[bytes] = []
        self.errors: list[Exception] = []
        self.done = threading.Event()

    def on_next(self, message: rs.Message[Any]) -> None:
        self.got.append(message.payload)
        message.ack()
        if len(self.got) >= self.expected:
            self.done.set()

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)
        self.done.set()

    def on_completed(self) -> None:
        self.done.set()


def _read_backlog(ws_url: str, topic_name: str, **observe: Any) -> tuple[list[bytes], _Acker]:
    """Stores COUNT large messages, then reads and acks them with ``topic.observe(**observe)``:
    the payloads stored, and what came (at most WAIT seconds after the first is asked for)."""
    payloads = [i.to_bytes(4, "big") + bytes(SIZE - 4) for i in range(COUNT)]
    with rs.Client(ws_url) as client:
        topic = client.topic(topic_name)
        producer = topic.producer()
        for payload in payloads:
            producer.on_next(payload)
        producer.flush()
        acker = _Acker(COUNT)
        subscription = topic.observe(start="earliest", **observe).subscribe(acker)
        try:
            acker.done.wait(WAIT)
        finally:
            subscription.dispose()
    assert not acker.errors
    assert len(acker.got) == COUNT, f"{len(acker.got)} of {COUNT} messages came"
    return payloads, acker


@pytest.mark.parametrize("subscription_type", ["Exclusive", "Failover", "Shared", "Key_Shared"])
def test_a_backlog_of_large_messages_is_read_to_the_end_with_the_defaults(
    pulsar: Any, topic_name: str, subscription_type: str
) -> None:
    payloads, acker = _read_backlog(
        pulsar.ws_url, topic_name, subscription="sub", subscription_type=subscription_type
    )
    if subscription_type in ("Exclusive", "Failover", "Key_Shared"):
        # Key_Shared too: one consumer, and messages without a key share one.
        assert acker.got == payloads  # each once, in order
    else:
        assert sorted(acker.got) == payloads  # each once


def test_a_reader_reads_a_backlog_of_large_messages_to_the_end_with_the_defaults(
    pulsar: Any, topic_name: str
) -> None:
    payloads, acker = _read_backlog(pulsar.ws_url, topic_name)
    assert acker.got == payloads  # each once, in order


def test_the_official_client_reads_a_backlog_of_large_messages_to_the_end_on_the_broker_port(
    broker_client: Any, topic_name: str
) -> None:
    """The broker alone, with the official client's default receiver queue (1,000): no gateway
    nudge or reopen in the way."""
    producer = broker_client.create_producer(topic_name, batching_enabled=False)
    payloads = [i.to_bytes(4, "big") + bytes(SIZE - 4) for i in range(COUNT)]
    for payload in payloads:
        producer.send(payload)
    producer.close()
    consumer = broker_client.subscribe(
        topic_name,
        "sub",
        consumer_type=pulsar_client.ConsumerType.Exclusive,
        initial_position=pulsar_client.InitialPosition.Earliest,
    )
    got: list[bytes] = []
    seen: dict[bytes, bytes] = {}  # serialized id -> payload
    try:
        while len(got) < COUNT:
            try:
                message = consumer.receive(int(WAIT * 1000))
            except pulsar_client.Timeout:
                break
            consumer.acknowledge(message)
            message_id = message.message_id().serialize()
            if message_id in seen:
                # The same stored message dispatched again: pulsar-lite now and then re-dispatches
                # to Exclusive consumers (see test_interop). A message stored twice has an id of
                # its own: it fails below.
                assert message.data() == seen[message_id]
                continue
            seen[message_id] = message.data()
            got.append(message.data())
    finally:
        consumer.close()
    assert len(got) == COUNT, f"{len(got)} of {COUNT} messages came"
    assert got == payloads  # each once, in order
