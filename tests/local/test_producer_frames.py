"""The producer endpoint answers each frame as Pulsar's WebSocket service does."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import websocket

pytestmark = pytest.mark.integration


def test_a_send_is_acked_ok_with_its_context_and_a_message_id(raw: Any, topic_name: str) -> None:
    sock = raw.producer(topic_name)
    raw.send(sock, {"payload": raw.b64(b"hello"), "context": "c-1"})
    ack = raw.recv(sock)
    assert ack["result"] == "ok"
    assert ack["context"] == "c-1"
    assert base64.b64decode(ack["messageId"], validate=True)
    assert ack["errorCode"] == 0
    assert ack["schemaVersion"] == 0
    assert "errorMsg" not in ack


def test_a_send_without_context_is_acked_without_one(raw: Any, topic_name: str) -> None:
    sock = raw.producer(topic_name)
    raw.send(sock, {"payload": raw.b64(b"x")})
    ack = raw.recv(sock)
    assert ack["result"] == "ok"
    assert "context" not in ack


def test_a_numeric_context_comes_back_as_a_string(raw: Any, topic_name: str) -> None:
    sock = raw.producer(topic_name)
    raw.send(sock, {"payload": raw.b64(b"x"), "context": 5})
    assert raw.recv(sock)["context"] == "5"


def test_invalid_json_is_send_error_3_without_context(raw: Any, topic_name: str) -> None:
    sock = raw.producer(topic_name)
    sock.send('{"payload": "eA==", "context": "c"')
    ack = raw.recv(sock)
    assert ack["result"] == "send-error:3"
    assert ack["errorMsg"]
    assert "context" not in ack


def test_a_frame_that_is_not_an_object_is_send_error_3(raw: Any, topic_name: str) -> None:
    sock = raw.producer(topic_name)
    sock.send("[1, 2]")
    assert raw.recv(sock)["result"] == "send-error:3"


def test_a_payload_that_is_not_base64_is_send_error_7_with_context(
    raw: Any, topic_name: str
) -> None:
    sock = raw.producer(topic_name)
    raw.send(sock, {"payload": "not base64!", "context": "c-7"})
    ack = raw.recv(sock)
    assert ack["result"] == "send-error:7"
    assert ack["context"] == "c-7"
    assert ack["errorMsg"].startswith("Invalid Base64 message-payload")


def test_a_url_safe_base64_payload_is_refused(raw: Any, topic_name: str) -> None:
    sock = raw.producer(topic_name)
    raw.send(sock, {"payload": "-_-_", "context": "c"})
    assert raw.recv(sock)["result"] == "send-error:7"


def test_a_missing_payload_is_send_error_7(raw: Any, topic_name: str) -> None:
    sock = raw.producer(topic_name)
    raw.send(sock, {"context": "c"})
    ack = raw.recv(sock)
    assert ack["result"] == "send-error:7"
    assert ack["context"] == "c"


def test_an_event_time_without_offset_is_send_error_7(raw: Any, topic_name: str) -> None:
    sock = raw.producer(topic_name)
    raw.send(sock, {"payload": "eA==", "context": "c", "eventTime": "2024-01-02T03:04:05"})
    ack = raw.recv(sock)
    assert ack["result"] == "send-error:7"
    assert ack["context"] == "c"


def test_the_socket_keeps_working_after_errors(raw: Any, topic_name: str) -> None:
    sock = raw.producer(topic_name)
    sock.send("garbage")
    raw.send(sock, {"payload": "%%%", "context": "bad"})
    raw.send(sock, {"payload": raw.b64(b"good"), "context": "good"})
    results = [raw.recv(sock)["result"] for _ in range(3)]
    assert results == ["send-error:3", "send-error:7", "ok"]


def test_binary_frames_are_ignored(raw: Any, topic_name: str) -> None:
    sock = raw.producer(topic_name)
    sock.send_binary(b'{"payload": "eA==", "context": "bin"}')
    raw.send(sock, {"payload": "eA==", "context": "text"})
    assert raw.recv(sock)["context"] == "text"


def test_unknown_fields_are_ignored(raw: Any, topic_name: str) -> None:
    sock = raw.producer(topic_name)
    raw.send(sock, {"payload": "eA==", "context": "c", "somethingNew": {"a": 1}})
    assert raw.recv(sock)["result"] == "ok"


def test_a_pipelined_burst_is_acked_once_per_frame_in_order(raw: Any, topic_name: str) -> None:
    sock = raw.producer(topic_name)
    acks = raw.produce(sock, [str(i).encode() for i in range(3000)])
    assert all(ack["result"] == "ok" for ack in acks)
    assert len({ack["messageId"] for ack in acks}) == 3000


def test_ping_is_answered_with_pong(raw: Any, topic_name: str) -> None:
    sock = raw.producer(topic_name)
    sock.ping(b"are-you-there")
    opcode, data = sock.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_PONG
    assert data == b"are-you-there"


@pytest.mark.parametrize("event_time", ["1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z"])
def test_an_event_time_at_or_before_the_epoch_closes_the_socket_as_pulsar_does(
    raw: Any, topic_name: str, event_time: str
) -> None:
    # Pulsar's message builder refuses it with an IllegalArgumentException that its handler
    # does not catch: Jetty closes the socket with 1011 and the exception's class name.
    sock = raw.producer(topic_name)
    raw.send(sock, {"payload": "eA==", "context": "c", "eventTime": event_time})
    opcode, data = sock.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert data == (1011).to_bytes(2, "big") + b"IllegalArgumentException"


def test_an_event_time_just_after_the_epoch_is_stored(raw: Any, topic_name: str) -> None:
    sock = raw.producer(topic_name)
    raw.send(sock, {"payload": "eA==", "context": "c", "eventTime": "1970-01-01T00:00:00.001Z"})
    assert raw.recv(sock)["result"] == "ok"


def test_a_delivery_delay_is_acked_and_a_bad_one_is_send_error_3(raw: Any, topic_name: str) -> None:
    """deliverAfterMs maps onto a long (Pulsar delays only on Shared subscriptions)."""
    sock = raw.producer(topic_name)
    raw.send(sock, {"payload": raw.b64(b"x"), "context": "later", "deliverAfterMs": 5})
    assert raw.recv(sock)["result"] == "ok"
    raw.send(sock, {"payload": raw.b64(b"x"), "context": "c", "deliverAfterMs": "soon"})
    ack = raw.recv(sock)
    assert ack["result"] == "send-error:3"
    assert "context" not in ack
