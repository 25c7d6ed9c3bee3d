"""Turning what a producer is given (bytes, str, OutgoingMessage, schema objects) into a frame."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from marshmallow import Schema

from rxstargate._frames import encode_send
from rxstargate._pulsar_time import format_pulsar_time, to_epoch_millis
from rxstargate.models import OutgoingMessage

__all__ = ["PayloadProblem", "encode_outgoing", "seconds"]


class PayloadProblem(ValueError):
    """A payload that cannot be sent (wrong type, or it fails the producer's schema)."""


def seconds(value: float | timedelta) -> float:
    """Seconds from a number or a timedelta."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def encode_outgoing(value: Any, context: str, schema: Schema | None) -> str:
    """The producer frame for ``value`` with ``context``.

    Raises:
        PayloadProblem: when ``value`` cannot be sent (a ValueError).

    Example:
        >>> encode_outgoing(OutgoingMessage("hi", key="k"), "1", None)
        '{"payload":"aGk=","context":"1","key":"k"}'
    """
    if type(value) is bytes and schema is None:  # the hot path
        return encode_send(value, context)
    message = value if isinstance(value, OutgoingMessage) else OutgoingMessage(value)
    payload = message.payload
    if isinstance(payload, bytes | bytearray | memoryview):
        raw = bytes(payload)
    elif isinstance(payload, str) and schema is None:
        raw = payload.encode("utf-8")
    elif schema is not None:
        data = schema.dump(payload)
        problems = schema.validate(data)
        if problems:
            raise PayloadProblem(f"payload does not match the schema: {problems}")
        raw = json.dumps(data, separators=(",", ":")).encode("utf-8")
    else:
        raise PayloadProblem(
            f"payload must be bytes, str or OutgoingMessage, not {type(payload).__name__}"
        )
    deliver_after = message.deliver_after
    return encode_send(
        raw,
        context,
        key=message.key,
        properties=dict(message.properties) if message.properties else None,
        event_time=(
            format_pulsar_time(to_epoch_millis(message.event_time))
            if message.event_time is not None
            else None
        ),
        deliver_at=to_epoch_millis(message.deliver_at) if message.deliver_at else None,
        deliver_after_ms=(
            int(seconds(deliver_after) * 1000) if deliver_after is not None else None
        ),
        replication_clusters=(
            list(message.replication_clusters) if message.replication_clusters else None
        ),
    )
