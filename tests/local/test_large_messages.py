"""A backlog of large messages is read to the end with the client's defaults.

pulsar-lite stops dispatching to a consumer of any subscription type after a read of 20 messages
of 256 KiB or more, until the consumer sends a flow command, a message is published or a consumer
joins or leaves. A consumer whose receiver queue is large sends its next flow command only after
half the queue (500 of the default 1,000), so it waits for good: with the official client alone,
20 of 100 messages of 512 KiB with a queue of 1,000. The gateway nudges Failover and Shared
consumers and opens a stalled reader again; Exclusive and Key_Shared ones are not nudged (see
docs/local-pulsar.md).
"""

from __future__ import annotations

import threading
from typing import Any

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


@pytest.mark.parametrize("subscription_type", ["Failover", "Shared"])
def test_a_backlog_of_large_messages_is_read_to_the_end_with_the_defaults(
    pulsar: Any, topic_name: str, subscription_type: str
) -> None:
    payloads, acker = _read_backlog(
        pulsar.ws_url, topic_name, subscription="sub", subscription_type=subscription_type
    )
    if subscription_type == "Failover":
        assert acker.got == payloads  # each once, in order
    else:
        assert sorted(acker.got) == payloads  # each once


def test_a_reader_reads_a_backlog_of_large_messages_to_the_end_with_the_defaults(
    pulsar: Any, topic_name: str
) -> None:
    payloads, acker = _read_backlog(pulsar.ws_url, topic_name)
    assert acker.got == payloads  # each once, in order
