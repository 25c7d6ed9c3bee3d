"""Every message reaches a socket exactly once, although pulsar-lite re-dispatches some.

pulsar-lite sends Exclusive/Failover consumers and readers some non-batched messages 2-4 times
once a backlog or a pipelined burst exceeds the receiver queue; the gateway must hide those copies.
"""

from __future__ import annotations

import base64
import threading
from collections import Counter
from typing import Any

import pytest
import websocket

pytestmark = pytest.mark.integration

COUNT = 3000


SENTINEL = b"sentinel"


def _stragglers(raw: Any, sock: websocket.WebSocket, topic: str) -> list[dict[str, Any]]:
    """What arrives (acked) before a sentinel sent now: copies that would come after the end."""
    raw.produce(raw.producer(topic), [SENTINEL])
    late = []
    while True:
        message = raw.recv(sock)
        raw.send(sock, {"messageId": message["messageId"]})
        if base64.b64decode(message["payload"]) == SENTINEL:
            return late
        late.append(message)


def _receive_all(
    raw: Any, sock: websocket.WebSocket, expected: int, topic: str, finish: Any = None
) -> Counter[bytes]:
    """Receive and ack until ``expected`` distinct payloads came, then catch stragglers."""
    seen: Counter[bytes] = Counter()
    ids: Counter[str] = Counter()
    sock.settimeout(15)
    while len(seen) < expected:
        message = raw.recv(sock)
        seen[base64.b64decode(message["payload"])] += 1
        ids[message["messageId"]] += 1
        raw.send(sock, {"messageId": message["messageId"]})
    if finish is not None:
        finish()
    for message in _stragglers(raw, sock, topic):
        seen[base64.b64decode(message["payload"])] += 1
        ids[message["messageId"]] += 1
    assert max(ids.values()) == 1, "a message id was delivered twice"
    return seen


def _produce_in_background(raw: Any, topic: str, payloads: list[bytes], **params: Any) -> Any:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            acks = raw.produce(raw.producer(topic, **params), payloads)
            assert all(a["result"] == "ok" for a in acks)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="test-producer")
    thread.start()

    def finish() -> None:
        thread.join(60)
        assert not thread.is_alive()
        assert not errors, errors

    return finish


@pytest.mark.parametrize("batched", [False, True], ids=["unbatched", "batched"])
@pytest.mark.parametrize("mode", ["backlog", "burst"])
@pytest.mark.parametrize("subscription_type", ["Exclusive", "Shared", "Failover", "Key_Shared"])
def test_a_consumer_gets_each_message_exactly_once(
    raw: Any, topic_name: str, subscription_type: str, mode: str, batched: bool
) -> None:
    payloads = [f"m-{i}".encode() for i in range(COUNT)]
    params = {"batchingEnabled": "true"} if batched else {}
    if mode == "backlog":
        raw.produce(raw.producer(topic_name, **params), payloads)
        sock = raw.consumer(topic_name, "sub", subscriptionType=subscription_type)
        seen = _receive_all(raw, sock, COUNT, topic_name)
    else:
        sock = raw.consumer(topic_name, "sub", subscriptionType=subscription_type)
        finish = _produce_in_background(raw, topic_name, payloads, **params)
        seen = _receive_all(raw, sock, COUNT, topic_name, finish)
    assert set(seen) == set(payloads)
    assert max(seen.values()) == 1


@pytest.mark.parametrize("batched", [False, True], ids=["unbatched", "batched"])
@pytest.mark.parametrize("mode", ["backlog", "burst"])
def test_a_reader_gets_each_message_exactly_once_in_order(
    raw: Any, topic_name: str, mode: str, batched: bool
) -> None:
    payloads = [f"r-{i}".encode() for i in range(COUNT)]
    params = {"batchingEnabled": "true"} if batched else {}
    if mode == "backlog":
        raw.produce(raw.producer(topic_name, **params), payloads)
        sock = raw.reader(topic_name)
        finish = None
    else:
        sock = raw.reader(topic_name)
        raw.send(sock, {"type": "isEndOfTopic"})  # the reader is attached once this is answered
        raw.recv(sock)
        finish = _produce_in_background(raw, topic_name, payloads, **params)
    received: list[bytes] = []
    sock.settimeout(15)
    while len(received) < COUNT:
        message = raw.recv(sock)
        received.append(base64.b64decode(message["payload"]))
        raw.send(sock, {"messageId": message["messageId"]})
    if finish is not None:
        finish()
    received += [base64.b64decode(m["payload"]) for m in _stragglers(raw, sock, topic_name)]
    assert received == payloads
