"""A producer's send frame read as Pulsar's ``ProducerHandler`` reads it, and its acks.

Jackson maps the frame onto ``ProducerMessage``; a field that does not map fails the whole frame
with error 3 and no context echoed (Pulsar never got as far as reading it). A payload that is
missing or not base64, or an eventTime that is not a date, is error 7 with the context. An
eventTime at or before the epoch passes Jackson, but the message builder's ``eventTime()``
throws, uncaught by the handler: Jetty then closes the socket with 1011.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from rxstargate._server_time import parse_time
from rxstargate._service_rules.jackson import JacksonError, java_long, java_string

__all__ = [
    "HandlerThrows",
    "SendFrame",
    "SendFrameError",
    "error_ack",
    "ok_ack",
    "read_send_frame",
]

_OK = '{"result":"ok","messageId":"%s","context":%s,"errorCode":0,"schemaVersion":0}'
_OK_NO_CONTEXT = '{"result":"ok","messageId":"%s","errorCode":0,"schemaVersion":0}'


class SendFrameError(Exception):
    """A send frame Pulsar answers with ``send-error:<code>`` (3 or 7); ``context`` to echo."""

    def __init__(self, code: int, message: str, context: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.context = context


class HandlerThrows(Exception):
    """A send frame on which Pulsar's handler throws: Jetty closes the socket with 1011.

    The message is the Java exception's simple class name, which Jetty writes as the reason.
    """


@dataclass(frozen=True, slots=True)
class SendFrame:
    """What one send frame asks for, each field as Pulsar reads it (None when absent)."""

    context: str | None
    payload: bytes
    key: str | None
    properties: dict[str, str] | None
    replication_clusters: list[str] | None
    event_time: int | None  # epoch milliseconds, > 0
    deliver_at: int | None  # epoch milliseconds, only when > 0 (Pulsar ignores the rest)
    deliver_after_ms: int | None  # only when > 0, likewise


def read_send_frame(frame: Any) -> SendFrame:
    """Read a parsed send frame (``json.loads`` of its text).

    Raises:
        SendFrameError: code 3 when it does not map onto ``ProducerMessage`` (no context),
            code 7 for a missing or bad payload or eventTime (with the context).
        HandlerThrows: for an eventTime at or before the epoch.
    """
    if not isinstance(frame, dict):
        raise SendFrameError(
            3, "Cannot deserialize value of type `ProducerMessage` from non-object"
        )
    try:
        context = java_string(frame.get("context"), "context")
        payload_text = java_string(frame.get("payload"), "payload")
        properties = _properties(frame.get("properties"))
        key = java_string(frame.get("key"), "key")
        clusters = frame.get("replicationClusters")
        if clusters is not None and not isinstance(clusters, list):
            raise SendFrameError(3, "Cannot deserialize value of type `java.util.List`")
        deliver_at = java_long(frame.get("deliverAt"), "deliverAt")
        deliver_after_ms = java_long(frame.get("deliverAfterMs"), "deliverAfterMs")
        event_text = frame.get("eventTime")
        if event_text is not None and not isinstance(event_text, str):
            raise SendFrameError(
                3, "Cannot deserialize value of type `java.lang.String` for 'eventTime'"
            )
    except JacksonError as exc:
        raise SendFrameError(3, str(exc)) from None
    event_time = _event_time(event_text, context)
    if payload_text is None:
        raise SendFrameError(7, "Invalid Base64 message-payload error=payload is missing", context)
    try:
        payload = base64.b64decode(payload_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SendFrameError(7, f"Invalid Base64 message-payload error={exc}", context) from None
    return SendFrame(
        context=context,
        payload=payload,
        key=key,
        properties=properties,
        replication_clusters=None if clusters is None else [str(c) for c in clusters],
        event_time=event_time,
        deliver_at=deliver_at if deliver_at is not None and deliver_at > 0 else None,
        deliver_after_ms=(
            deliver_after_ms if deliver_after_ms is not None and deliver_after_ms > 0 else None
        ),
    )


def _properties(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SendFrameError(3, "Cannot deserialize value of type `java.util.Map` for 'properties'")
    return {str(k): java_string(v, "properties") or "" for k, v in value.items()}


def _event_time(text: str | None, context: str | None) -> int | None:
    if text is None:
        return None
    try:
        millis = parse_time(text)
    except ValueError as exc:
        raise SendFrameError(7, str(exc), context) from None
    if millis <= 0:
        raise HandlerThrows("IllegalArgumentException")
    return millis


def ok_ack(message_id: str, context: str | None) -> str:
    """An ``ok`` ack as Pulsar 2.8+ writes it (``errorCode`` and ``schemaVersion`` always 0)."""
    if context is None:
        return _OK_NO_CONTEXT % message_id
    return _OK % (message_id, json.dumps(context))


def error_ack(code: int, message: str | None, context: str | None) -> str:
    """A ``send-error:<code>`` ack, fields as Pulsar's ProducerAck writes them."""
    ack: dict[str, Any] = {"result": f"send-error:{code}"}
    if message is not None:
        ack["errorMsg"] = message
    if context is not None:
        ack["context"] = context
    ack["errorCode"] = 0
    ack["schemaVersion"] = 0
    return json.dumps(ack, separators=(",", ":"))
