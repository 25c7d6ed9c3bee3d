"""Producer, consumer and reader options: Pulsar's query parameters in snake_case, validated.

Each option keeps Pulsar's name (``sendTimeoutMillis`` -> ``send_timeout_millis``) and
Pulsar's unit. Validation happens before any network traffic; a wrong name or value raises
:class:`~rxstargate.exceptions.InvalidOptionError` (a ``ValueError``) naming the option.

Example:
    >>> producer_query({"send_timeout_millis": 5000, "batching_enabled": False})
    {'sendTimeoutMillis': '5000', 'batchingEnabled': 'false'}
    >>> SubscriptionType.KEY_SHARED == "Key_Shared"
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from rxstargate._option_enums import (
    CompressionType,
    CryptoFailureAction,
    HashingScheme,
    InitialPosition,
    MessageRoutingMode,
    SubscriptionMode,
    SubscriptionType,
)
from rxstargate.exceptions import InvalidOptionError

__all__ = [
    "CompressionType",
    "ConsumerOptionsSchema",
    "CryptoFailureAction",
    "HashingScheme",
    "InitialPosition",
    "MessageRoutingMode",
    "ProducerOptionsSchema",
    "ReaderOptionsSchema",
    "SubscriptionMode",
    "SubscriptionType",
    "consumer_query",
    "producer_query",
    "reader_query",
]


def _enum(enum: type[StrEnum]) -> fields.Field[Any]:
    return fields.Enum(enum, by_value=True)


# Pulsar reads these options with Integer.parseInt (initialSequenceId with Long.parseLong): a
# value out of Java's range fails its handshake with 400 "Invalid query params".
_INT_MAX = 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def _int(minimum: int = 0, maximum: int = _INT_MAX) -> fields.Field[Any]:
    """An integer option Pulsar reads as a Java ``int`` (``minimum`` to 2**31 - 1)."""
    return fields.Integer(strict=True, validate=validate.Range(min=minimum, max=maximum))


def _name() -> fields.Field[Any]:
    return fields.String(validate=validate.Regexp(r"\S", error="must not be blank"))


def _ack_timeout(value: int) -> None:
    if value != 0 and value < 1000:
        raise ValidationError("must be 0 (off) or at least 1000 ms")
    if value > _INT_MAX:
        raise ValidationError(f"must be at most {_INT_MAX} ms (a Java int)")


class _OptionsSchema(Schema):
    class Meta:
        unknown = RAISE


class ProducerOptionsSchema(_OptionsSchema):
    """Pulsar's WebSocket producer query parameters."""

    send_timeout_millis = _int()
    batching_enabled = fields.Boolean(truthy={True}, falsy={False})
    batching_max_messages = _int(minimum=1)
    max_pending_messages = _int()
    batching_max_publish_delay = _int(minimum=1)
    message_routing_mode = _enum(MessageRoutingMode)
    compression_type = _enum(CompressionType)
    producer_name = _name()
    initial_sequence_id = fields.Integer(
        strict=True, validate=validate.Range(min=_LONG_MIN, max=_LONG_MAX)
    )
    hashing_scheme = _enum(HashingScheme)
    encryption_keys = fields.String()


class ConsumerOptionsSchema(_OptionsSchema):
    """Pulsar's WebSocket consumer query parameters (the subscription type is an argument)."""

    ack_timeout_millis = fields.Integer(strict=True, validate=_ack_timeout)
    subscription_mode = _enum(SubscriptionMode)
    subscription_initial_position = _enum(InitialPosition)
    receiver_queue_size = _int(maximum=1000)
    consumer_name = _name()
    priority_level = _int()
    max_redeliver_count = _int(minimum=1)
    dead_letter_topic = _name()
    negative_ack_redelivery_delay = _int()
    crypto_failure_action = _enum(CryptoFailureAction)


class ReaderOptionsSchema(_OptionsSchema):
    """Pulsar's WebSocket reader query parameters (the start position is an argument)."""

    reader_name = _name()
    receiver_queue_size = _int(maximum=1000)
    crypto_failure_action = _enum(CryptoFailureAction)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _wire(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, StrEnum):
        return value.value
    return str(value)


def _query(schema: Schema, options: Mapping[str, Any], what: str) -> dict[str, str]:
    try:
        loaded: dict[str, Any] = schema.load(dict(options))
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_": exc.messages}
        problems: dict[str, list[str]] = {}
        for key, value in messages.items():
            problems[str(key)] = (
                [str(v) for v in value] if isinstance(value, list) else [str(value)]
            )
        text = "; ".join(f"{key}: {' '.join(msgs)}" for key, msgs in sorted(problems.items()))
        raise InvalidOptionError(f"invalid {what} option(s): {text}", problems) from None
    return {_camel(name): _wire(value) for name, value in loaded.items() if value is not None}


_PRODUCER = ProducerOptionsSchema()
_CONSUMER = ConsumerOptionsSchema()
_READER = ReaderOptionsSchema()


def producer_query(options: Mapping[str, Any]) -> dict[str, str]:
    """Validate producer options and return them as Pulsar query parameters.

    Raises:
        InvalidOptionError: naming each unknown option or bad value.
    """
    return _query(_PRODUCER, options, "producer")


def consumer_query(options: Mapping[str, Any]) -> dict[str, str]:
    """Validate consumer options and return them as Pulsar query parameters.

    Raises:
        InvalidOptionError: naming each unknown option or bad value.

    Example:
        >>> consumer_query({"ack_timeout_millis": 500})
        Traceback (most recent call last):
        ...
        rxstargate.exceptions.InvalidOptionError: invalid consumer option(s): ack_timeout_millis: must be 0 (off) or at least 1000 ms
    """  # noqa: E501
    return _query(_CONSUMER, options, "consumer")


def reader_query(options: Mapping[str, Any]) -> dict[str, str]:
    """Validate reader options and return them as Pulsar query parameters.

    Raises:
        InvalidOptionError: naming each unknown option or bad value.
    """
    return _query(_READER, options, "reader")
