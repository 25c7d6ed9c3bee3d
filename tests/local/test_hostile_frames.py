"""Frames a careless or hostile client may send: none may stall the gateway or crash a socket.

Pulsar's ConsumerCommand reads ``permitMessages`` as a Java ``Integer`` and its JSON parser has a
nesting limit: anything it cannot map is "Failed to de-serialize from JSON" (error 3), which
closes a consumer socket with an empty close frame and answers a producer ``send-error:3``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import websocket

pytestmark = pytest.mark.integration

DEEP = "[" * 100_000
INT_MAX = 2**31 - 1


def _closed_without_status(sock: websocket.WebSocket) -> bool:
    opcode, data = sock.recv_data(control_frame=True)
    return opcode == websocket.ABNF.OPCODE_CLOSE and data == b""


def _publish(raw: Any, topic: str, payloads: list[bytes]) -> None:
    sock = raw.producer(topic)
    assert all(ack["result"] == "ok" for ack in raw.produce(sock, payloads))
    sock.close()


def test_the_largest_permit_costs_nothing_and_delivers(raw: Any, topic_name: str) -> None:
    consumer = raw.consumer(topic_name, "sub", pullMode="true")
    raw.send(consumer, {"type": "permit", "permitMessages": INT_MAX})
    raw.send(consumer, {"type": "permit", "permitMessages": INT_MAX})  # credit adds up past int
    # The event loop is free: another socket is served at once, and the credit delivers.
    _publish(raw, topic_name, [b"a", b"b", b"c"])
    got = [base64.b64decode(raw.recv(consumer)["payload"]) for _ in range(3)]
    assert got == [b"a", b"b", b"c"]


def test_a_negative_permit_takes_credit_back(raw: Any, topic_name: str) -> None:
    _publish(raw, topic_name, [str(i).encode() for i in range(5)])
    consumer = raw.consumer(topic_name, "sub", pullMode="true")
    raw.send(consumer, {"type": "permit", "permitMessages": -2})
    raw.send(consumer, {"type": "permit", "permitMessages": 3})  # -2 + 3: one delivery
    assert [base64.b64decode(m["payload"]) for m in raw.arrivals(consumer, 1, ack=True)] == [b"0"]
    raw.send(consumer, {"type": "permit", "permitMessages": 1})
    assert base64.b64decode(raw.recv(consumer)["payload"]) == b"1"


@pytest.mark.parametrize(
    "permits",
    [str(INT_MAX + 1), str(-(2**31) - 1), "1000000000000000", "9" * 5000, "true", "null", '"x"'],
)
def test_a_permit_that_is_no_java_int_closes_the_socket_as_error_3(
    raw: Any, topic_name: str, permits: str
) -> None:
    consumer = raw.consumer(topic_name, "sub", pullMode="true")
    consumer.send('{"type":"permit","permitMessages":' + permits + "}")
    assert _closed_without_status(consumer)


def test_deeply_nested_json_closes_a_consumer_as_error_3(raw: Any, topic_name: str) -> None:
    consumer = raw.consumer(topic_name, "sub")
    consumer.send(DEEP)
    assert _closed_without_status(consumer)
    # The gateway is unharmed: the same subscription opens again at once.
    again = raw.consumer(topic_name, "sub")
    raw.send(again, {"type": "isEndOfTopic"})
    assert raw.recv(again) == {"endOfTopic": False}


def test_deeply_nested_json_is_send_error_3_for_a_producer(raw: Any, topic_name: str) -> None:
    producer = raw.producer(topic_name)
    producer.send(DEEP)
    ack = raw.recv(producer)
    assert ack["result"] == "send-error:3"
    assert "context" not in ack
    (ok,) = raw.produce(producer, [b"still fine"])
    assert ok["result"] == "ok"


def test_deeply_nested_json_counts_as_an_ack_for_a_reader(raw: Any, topic_name: str) -> None:
    _publish(raw, topic_name, [b"a", b"b"])
    reader = raw.reader(topic_name, receiverQueueSize=1)
    assert base64.b64decode(raw.recv(reader)["payload"]) == b"a"
    reader.send(DEEP)  # any frame but isEndOfTopic returns a reader's credit
    assert base64.b64decode(raw.recv(reader)["payload"]) == b"b"
    reader.send(json.dumps({"type": "isEndOfTopic"}))
    assert raw.recv(reader) == {"endOfTopic": False}
