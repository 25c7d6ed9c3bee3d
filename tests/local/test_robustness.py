"""The gateway survives abrupt disconnects and many sockets, and releases what they held."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _cut(sock: Any) -> None:
    """Drop the TCP connection without a close frame."""
    sock.sock.shutdown(2)
    sock.shutdown()


def test_an_abruptly_dropped_consumer_releases_its_subscription(raw: Any, topic_name: str) -> None:
    raw.produce(raw.producer(topic_name), [b"held", b"next"])
    first = raw.consumer(topic_name, "sub")
    held = raw.recv(first)
    _cut(first)
    second = raw.consumer(topic_name, "sub")  # not 409: the broker consumer was closed
    again = raw.recv(second)
    assert again["messageId"] == held["messageId"]  # unacked, so redelivered


def test_an_abruptly_dropped_producer_mid_burst_does_not_disturb_others(
    raw: Any, topic_name: str
) -> None:
    doomed = raw.producer(topic_name)
    for i in range(500):
        raw.send(doomed, {"payload": raw.b64(b"x"), "context": str(i)})
    _cut(doomed)
    survivor = raw.producer(topic_name)
    acks = raw.produce(survivor, [b"a", b"b"])
    assert [a["result"] for a in acks] == ["ok", "ok"]


def test_an_acknowledged_message_is_never_delivered_again(raw: Any, topic_name: str) -> None:
    raw.produce(raw.producer(topic_name), [str(i).encode() for i in range(200)])
    sock = raw.consumer(topic_name, "sub", subscriptionType="Shared")
    acked = {m["messageId"] for m in raw.arrivals(sock, 200, ack=True)}
    assert len(acked) == 200
    _cut(sock)
    fresh = raw.consumer(topic_name, "sub", subscriptionType="Shared")
    # What the dropped socket left unacked would come back before a message published now.
    assert raw.before_sentinel(fresh, topic_name) == []


def test_many_concurrent_sockets_each_get_their_own_messages(raw: Any, topic_name: str) -> None:
    topics = [f"{topic_name}-{i}" for i in range(20)]
    errors: list[BaseException] = []
    stage: dict[str, str] = {}  # where each pair is, for the failure message

    def pair(topic: str) -> None:
        try:
            stage[topic] = "consumer"
            # Shared, not the default Exclusive: under load pulsar-lite's Exclusive dispatcher
            # now and then stops part way until the next publish (with the official client
            # alone too; docs/local-pulsar.md), which the gateway can only nudge on Shared.
            consumer = raw.consumer(topic, "sub", subscriptionType="Shared")
            stage[topic] = "produce"
            acks = raw.produce(raw.producer(topic), [f"{topic}:{i}".encode() for i in range(50)])
            assert all(a["result"] == "ok" for a in acks)
            got = []
            for n in range(50):
                stage[topic] = f"recv {n}"
                message = raw.recv(consumer)
                raw.send(consumer, {"messageId": message["messageId"]})
                got.append(base64.b64decode(message["payload"]))
            assert got == [f"{topic}:{i}".encode() for i in range(50)]
            stage[topic] = "done"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=pair, args=(t,), name="test-pair") for t in topics]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 15  # all of them together: a stuck pair fails the test fast
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = {t.rsplit("-", 1)[1]: s for t, s in stage.items() if s != "done"}
    assert not any(t.is_alive() for t in threads), f"pairs still waiting (pair: at): {stuck}"
    assert not errors, errors[:3]
