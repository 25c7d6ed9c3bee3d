"""Turning what a producer is given (bytes, str, OutgoingMessage, schema objects) into a frame."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from marshmallow import Schema

from rxstargate._frames import encode_send
from rxstargate._pulsar_time import event_time_text, to_epoch_millis
from rxstargate.models import OutgoingMessage

__all__ = ["PayloadProblem", "encode_outgoing", "seconds"]


class PayloadProblem(ValueError):
    """A payload that cannot be sent (wrong type, or it fails the producer's schema)."""


def _check_fields(message: OutgoingMessage) -> None:
    """Refuse fields of the wrong type before they reach the frame (each names itself)."""
    if message.key is not None and not isinstance(message.key, str):
        raise PayloadProblem(f"key must be a str, not {type(message.key).__name__}")
    properties = message.properties
    if properties is not None and not (
        isinstance(properties, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in properties.items())
    ):
        raise PayloadProblem(f"properties must map str to str, not {properties!r:.80}")
    delay = message.deliver_after
    if delay is not None and (
        isinstance(delay, bool)
        or not isinstance(delay, int | float | timedelta)
        or not 0 <= seconds(delay) < math.inf
    ):
        raise PayloadProblem(f"deliver_after must be seconds or a timedelta, not {delay!r:.80}")
    clusters = message.replication_clusters
    if clusters is not None and (
        isinstance(clusters, str) or not all(isinstance(c, str) for c in clusters)
    ):
        raise PayloadProblem(f"replication_clusters must be a list of str, not {clusters!r:.80}")


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
    _check_fields(message)
    deliver_after = message.deliver_after
    return encode_send(
        raw,
        context,
        key=message.key,
        properties=dict(message.properties) if message.properties else None,
        event_time=(
            event_time_text(message.event_time) if message.event_time is not None else None
        ),
        deliver_at=(
            to_epoch_millis(message.deliver_at, "deliver_at") if message.deliver_at else None
        ),
        deliver_after_ms=(
            int(seconds(deliver_after) * 1000) if deliver_after is not None else None
        ),
        replication_clusters=(
            list(message.replication_clusters) if message.replication_clusters else None
        ),
    )
