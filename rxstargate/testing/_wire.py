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
import binascii
import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from rxstargate._server_time import format_time, parse_time
from rxstargate._service_rules.jackson import (
    ACK,
    END_OF_TOPIC,
    NACK,
    PERMIT,
    UNSUBSCRIBE,
    JacksonError,
    java_int,
    java_string,
)
from rxstargate._service_rules.send_frame import HandlerThrows, SendFrameError, read_send_frame

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


def ok_ack(message_id: str, context: str | None) -> str:
    """An ``ok`` ack as Pulsar 2.8+ writes it (``errorCode`` and ``schemaVersion`` always 0)."""
    ack: dict[str, Any] = {"result": "ok", "messageId": message_id}
    if context is not None:
        ack["context"] = context
    ack["errorCode"] = 0
    ack["schemaVersion"] = 0
    return str(_dumps(ack))


def error_ack(code: int, message: str | None, context: str | None) -> str:
    """A ``send-error:<code>`` ack, its fields as Pulsar's ProducerAck writes them."""
    ack: dict[str, Any] = {"result": f"send-error:{code}"}
    if message is not None:
        ack["errorMsg"] = message
    if context is not None:
        ack["context"] = context
    ack["errorCode"] = 0
    ack["schemaVersion"] = 0
    return str(_dumps(ack))


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


def end_of_topic_answer(reached: bool) -> str:
    """The answer to ``isEndOfTopic``: Pulsar's EndOfTopicResponse, a JSON boolean."""
    return '{"endOfTopic":true}' if reached else '{"endOfTopic":false}'


class CommandError(Exception):
    """A command Pulsar cannot map (error 3): the socket is closed without a status."""


@dataclass(frozen=True, slots=True)
class Command:
    """One consumer command: ``kind`` is ack, negativeAcknowledge, permit, unsubscribe or
    isEndOfTopic; ``message_id`` the id as sent (acks and nacks); ``permits`` for permits."""

    kind: str
    message_id: str = ""
    permits: int = 0


def _message_id(value: Any) -> str:
    if isinstance(value, bool | int | float):
        value = json.dumps(value)
    if not isinstance(value, str) or not value:
        raise CommandError("messageId is missing")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CommandError(str(exc)) from None
    return value


def parse_command(text: str) -> Command:
    """Read one consumer command as Pulsar's ``ConsumerCommand``; no or an unknown type is an ack.

    Raises:
        CommandError: for what Pulsar answers with error 3.

    Example:
        >>> parse_command('{"type": "permit", "permitMessages": 100}')
        Command(kind='permit', message_id='', permits=100)
    """
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CommandError(f"Failed to de-serialize from JSON: {type(exc).__name__}") from None
    if not isinstance(frame, dict):
        raise CommandError("Cannot deserialize `ConsumerCommand` from a non-object")
    try:
        kind = java_string(frame.get("type"), "type")
        permits = java_int(frame.get("permitMessages"))
    except JacksonError as exc:
        raise CommandError(str(exc)) from None
    if kind == PERMIT:
        if permits is None:
            raise CommandError("Missing required permitMessages field for 'permit' command")
        return Command(PERMIT, permits=permits)
    if kind in (UNSUBSCRIBE, END_OF_TOPIC):
        return Command(kind)
    return Command(NACK if kind == NACK else ACK, _message_id(frame.get("messageId")))


def is_end_of_topic_query(text: str) -> bool:
    """Whether a reader's frame asks ``isEndOfTopic`` (any other frame is an ack)."""
    try:
        command = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(command, dict) and command.get("type") == END_OF_TOPIC
