"""The server's side of Pulsar's WebSocket frames: what MemoryPulsar reads and writes.

Written from Pulsar's WebSocket service (``ProducerMessage``, ``ProducerAck``,
``ConsumerMessage``, ``ConsumerCommand``, ``EndOfTopicResponse``, ``DateFormatter``) and kept
apart from the client's codec, so that one mistake cannot pass the tests of both: the golden
frames check each side on its own.

Jackson reads ``ProducerMessage`` and ``ConsumerCommand``: String fields take any scalar,
``Integer`` fields take whole numbers and numeric text, unknown fields are ignored, and what
cannot be mapped is "Failed to de-serialize from JSON" (send-error 3; a consumer socket closes).
Times are Java's ``ISO_OFFSET_DATE_TIME`` in UTC.
"""

from __future__ import annotations

import base64
import json
from typing import Any, NamedTuple

from rxstargate._server_time import format_time, parse_time
from rxstargate._service_rules.commands import (
    Command,
    CommandError,
    end_of_topic_answer,
    is_end_of_topic_query,
    parse_command,
)
from rxstargate._service_rules.send_frame import (
    HandlerThrows,
    SendFrameError,
    error_ack,
    ok_ack,
    read_send_frame,
)

__all__ = [
    "Command",
    "CommandError",
    "FrameError",
    "HandlerThrows",
    "Publication",
    "decode_send",
    "end_of_topic_answer",
    "error_ack",
    "format_time",
    "is_end_of_topic_query",
    "message_frame",
    "ok_ack",
    "parse_command",
    "parse_time",
]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


# --- producer frames ------------------------------------------------------------------------------


FrameError = SendFrameError


class Publication(NamedTuple):
    """What one send frame asks to store."""

    payload: bytes
    key: str | None
    properties: dict[str, str]
    event_time: int | None  # epoch milliseconds


def decode_send(frame: Any) -> tuple[str | None, Publication]:
    """A parsed send frame as (context, what to store).

    Raises:
        FrameError: code 3 when it does not map onto ``ProducerMessage`` (no context then),
            code 7 for a missing or bad payload or eventTime (with the context).
        HandlerThrows: for an eventTime at or before the epoch (the socket closes with 1011).
    """
    send = read_send_frame(frame)
    publication = Publication(send.payload, send.key, send.properties or {}, send.event_time)
    return send.context, publication


# --- consumer and reader frames -------------------------------------------------------------------


def message_frame(
    message_id: str,
    payload: bytes,
    properties: dict[str, str],
    publish_time: int,
    redelivery_count: int,
    *,
    event_time: int | None = None,
    key: str | None = None,
    topic: str | None = None,
) -> str:
    """A ConsumerMessage frame: eventTime and key only when set, topic only on v3 sockets
    (local Pulsar's extension: Pulsar's own service names no topic)."""
    frame: dict[str, Any] = {
        "messageId": message_id,
        "payload": base64.b64encode(payload).decode("ascii"),
        "properties": properties,
        "publishTime": format_time(publish_time),
        "redeliveryCount": redelivery_count,
    }
    if event_time:
        frame["eventTime"] = format_time(event_time)
    if key:
        frame["key"] = key
    if topic is not None:
        frame["topic"] = topic
    return str(_dumps(frame))
