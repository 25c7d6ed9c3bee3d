"""Frames the gateway handles as they arrive keep their order with frames that need waiting.

Several frames in one TCP segment: complete text frames are handled at once, while a fragmented
message, a binary frame or a frame that ends the socket takes the slower path; what the client
sees must still follow the order it sent them in.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import websocket

pytestmark = pytest.mark.integration

ABNF = websocket.ABNF


def _send_frame(context: int) -> bytes:
    payload = base64.b64encode(str(context).encode()).decode()
    return json.dumps({"payload": payload, "context": str(context)}).encode()


def _in_one_write(sock: websocket.WebSocket, frames: list[websocket.ABNF]) -> None:
    sock.sock.sendall(b"".join(frame.format() for frame in frames))


def test_sends_around_a_fragmented_and_a_binary_frame_are_acked_in_order(
    raw: Any, topic_name: str
) -> None:
    sock = raw.producer(topic_name)
    fragmented = _send_frame(1)
    middle = len(fragmented) // 2
    _in_one_write(
        sock,
        [
            ABNF.create_frame(_send_frame(0), ABNF.OPCODE_TEXT),
            ABNF.create_frame(fragmented[:middle], ABNF.OPCODE_TEXT, fin=0),
            ABNF.create_frame(fragmented[middle:], ABNF.OPCODE_CONT, fin=1),
            ABNF.create_frame(b"ignored", ABNF.OPCODE_BINARY),
            ABNF.create_frame(_send_frame(2), ABNF.OPCODE_TEXT),
            ABNF.create_frame(_send_frame(3), ABNF.OPCODE_TEXT),
        ],
    )
    acks = [raw.recv(sock) for _ in range(4)]
    assert [ack["context"] for ack in acks] == ["0", "1", "2", "3"]
    assert all(ack["result"] == "ok" for ack in acks)


def test_nothing_after_a_frame_that_closes_the_socket_is_sent(raw: Any, topic_name: str) -> None:
    sock = raw.producer(topic_name)
    closing = {"payload": "eA==", "context": "1", "eventTime": "1970-01-01T00:00:00Z"}
    _in_one_write(
        sock,
        [
            ABNF.create_frame(_send_frame(0), ABNF.OPCODE_TEXT),
            ABNF.create_frame(json.dumps(closing).encode(), ABNF.OPCODE_TEXT),
            ABNF.create_frame(_send_frame(2), ABNF.OPCODE_TEXT),
        ],
    )
    # The first send's ack may or may not come before the close (its receipt races it).
    opcode, data = sock.recv_data(control_frame=True)
    if opcode == ABNF.OPCODE_TEXT:
        assert json.loads(data)["context"] == "0"
        opcode, data = sock.recv_data(control_frame=True)
    assert opcode == ABNF.OPCODE_CLOSE
    assert data == (1011).to_bytes(2, "big") + b"IllegalArgumentException"
    stored = [
        message["payload"] for message in raw.before_sentinel(raw.reader(topic_name), topic_name)
    ]
    assert stored in ([], [raw.b64(b"0")])


def test_a_consumer_acks_around_a_fragmented_ack_settle_every_message(
    raw: Any, topic_name: str
) -> None:
    producer = raw.producer(topic_name)
    raw.produce(producer, [b"a", b"b", b"c"])
    consumer = raw.consumer(topic_name, "order", ackTimeoutMillis=1000)
    ids = [raw.recv(consumer)["messageId"] for _ in range(3)]
    fragmented = json.dumps({"messageId": ids[1]}).encode()
    _in_one_write(
        consumer,
        [
            ABNF.create_frame(json.dumps({"messageId": ids[0]}).encode(), ABNF.OPCODE_TEXT),
            ABNF.create_frame(fragmented[:5], ABNF.OPCODE_TEXT, fin=0),
            ABNF.create_frame(fragmented[5:], ABNF.OPCODE_CONT, fin=1),
            ABNF.create_frame(json.dumps({"messageId": ids[2]}).encode(), ABNF.OPCODE_TEXT),
            ABNF.create_frame(b'{"type": "isEndOfTopic"}', ABNF.OPCODE_TEXT),
        ],
    )
    assert raw.recv(consumer) == {"endOfTopic": False}
    # None is delivered again: all were settled.
    assert raw.before_sentinel_comes_back(consumer, topic_name) == []
