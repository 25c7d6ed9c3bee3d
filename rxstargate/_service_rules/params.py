"""Query parameters of the producer, consumer and reader endpoints, validated as Pulsar does.

Numbers follow Java's ``Integer.parseInt``/``Long.parseLong`` (error text
``For input string: "x"``), booleans ``Boolean.parseBoolean`` (never an error), enums are
case-sensitive Java names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from rxstargate._service_rules.vocabulary import ENUM_CONSTANTS

_INTEGER = re.compile(r"[+-]?[0-9]+")
_INT_MAX = 2**31 - 1
_LONG_MAX = 2**63 - 1
MAX_QUEUE = 1000


class ParamError(Exception):
    """Raised for a query parameter Pulsar would refuse with 400 "Invalid query params: ..."."""


def _int(query: Mapping[str, str], name: str, *, long: bool = False) -> int | None:
    text = query.get(name)
    if text is None:
        return None
    limit = _LONG_MAX if long else _INT_MAX
    if not _INTEGER.fullmatch(text):
        raise ParamError(f'For input string: "{text}"')
    # Java takes any number of leading zeros; Python's int() refuses more than 4300 digits.
    digits = text.lstrip("+-").lstrip("0") or "0"
    if len(digits) > 19:
        raise ParamError(f'For input string: "{text}"')
    value = -int(digits) if text.startswith("-") else int(digits)
    if not -limit - 1 <= value <= limit:
        raise ParamError(f'For input string: "{text}"')
    return value


def _bool(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").lower() == "true"


def _enum(query: Mapping[str, str], name: str, java_type: str) -> str | None:
    text = query.get(name)
    if text is None:
        return None
    if text not in ENUM_CONSTANTS[java_type]:
        raise ParamError(f"No enum constant org.apache.pulsar.client.api.{java_type}.{text}")
    return text


def _name(query: Mapping[str, str], name: str) -> str | None:
    text = query.get(name)
    if text is not None and not text.strip():
        raise ParamError(f"{name} cannot be blank")
    return text


def _non_negative(value: int | None, message: str) -> int | None:
    if value is not None and value < 0:
        raise ParamError(message)
    return value


def _crypto_failure_action(query: Mapping[str, str]) -> str:
    # Pulsar ignores an invalid value (a warning, no error) and keeps the default.
    text = query.get("cryptoFailureAction", "FAIL")
    return text if text in ENUM_CONSTANTS["ConsumerCryptoFailureAction"] else "FAIL"


def receiver_queue_size(query: Mapping[str, str]) -> int:
    """The delivery window: ``receiverQueueSize`` capped at 1000, 0 meaning 1."""
    size = _non_negative(_int(query, "receiverQueueSize"), "receiverQueueSize needs to be >= 0")
    if size is None:
        return MAX_QUEUE
    return max(1, min(size, MAX_QUEUE))


@dataclass(frozen=True, slots=True)
class ProducerParams:
    """Producer endpoint options (batching options apply only with ``batchingEnabled=true``)."""

    producer_name: str | None = None
    initial_sequence_id: int | None = None
    hashing_scheme: str = "JavaStringHash"
    send_timeout_millis: int = 30000
    batching_enabled: bool = False
    batching_max_messages: int = 1000
    max_pending_messages: int = 0
    batching_max_publish_delay: int = 1
    message_routing_mode: str = "SinglePartition"
    compression_type: str = "NONE"
    encryption_keys: str | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ProducerParams:
        """Validate a producer's query parameters.

        Raises:
            ParamError: when one is malformed.
        """
        timeout = _non_negative(_int(query, "sendTimeoutMillis"), "sendTimeout needs to be >= 0")
        batching = _bool(query, "batchingEnabled")
        # Pulsar reads the batching options only when batching is on (ignored, unparsed, if not).
        max_messages = _int(query, "batchingMaxMessages") if batching else None
        pending = None
        delay = None
        if batching:
            pending = _non_negative(
                _int(query, "maxPendingMessages"), "maxPendingMessages needs to be >= 0"
            )
            delay = _int(query, "batchingMaxPublishDelay")
            if delay is not None and delay < 1:
                raise ParamError("configured value for batching delay must be at least 1ms")
        hashing = _enum(query, "hashingScheme", "HashingScheme")
        routing = _enum(query, "messageRoutingMode", "MessageRoutingMode")
        compression = _enum(query, "compressionType", "CompressionType")
        return cls(
            producer_name=_name(query, "producerName"),
            initial_sequence_id=_int(query, "initialSequenceId", long=True),
            hashing_scheme=hashing or "JavaStringHash",
            send_timeout_millis=30000 if timeout is None else timeout,
            batching_enabled=batching,
            batching_max_messages=max_messages or 1000,
            max_pending_messages=pending or 0,
            batching_max_publish_delay=delay or 1,
            message_routing_mode=routing or "SinglePartition",
            compression_type=compression or "NONE",
            encryption_keys=query.get("encryptionKeys") or None,
        )


@dataclass(frozen=True, slots=True)
class ConsumerParams:
    """Consumer endpoint options."""

    subscription_type: str = "Exclusive"
    subscription_mode: str = "Durable"
    initial_position: str = "Latest"
    ack_timeout_millis: int = 0
    receiver_queue_size: int = MAX_QUEUE
    consumer_name: str | None = None
    priority_level: int = 0
    max_redeliver_count: int | None = None
    dead_letter_topic: str | None = None
    negative_ack_redelivery_delay: int = 60000
    pull_mode: bool = False
    crypto_failure_action: str = "FAIL"

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ConsumerParams:
        """Validate a consumer's query parameters.

        Raises:
            ParamError: when one is malformed.
        """
        ack_timeout = _int(query, "ackTimeoutMillis") or 0
        if ack_timeout != 0 and ack_timeout < 1000:
            raise ParamError("Ack timeout should be greater than 1000 ms")
        sub_type = _enum(query, "subscriptionType", "SubscriptionType")
        mode = _enum(query, "subscriptionMode", "SubscriptionMode")
        position = _enum(query, "subscriptionInitialPosition", "SubscriptionInitialPosition")
        priority = _non_negative(_int(query, "priorityLevel"), "priorityLevel needs to be >= 0")
        nack_delay = _non_negative(
            _int(query, "negativeAckRedeliveryDelay"),
            "negativeAckRedeliveryDelay needs to be >= 0",
        )
        max_redeliver = _int(query, "maxRedeliverCount")
        dead_letter = "maxRedeliverCount" in query or "deadLetterTopic" in query
        if dead_letter and (max_redeliver or 0) < 1:
            # A dead-letter policy needs a count; the consumer builder checks it.
            raise ParamError("MaxRedeliverCount must be > 0.")
        return cls(
            subscription_type=sub_type or "Exclusive",
            subscription_mode=mode or "Durable",
            initial_position=position or "Latest",
            ack_timeout_millis=ack_timeout,
            receiver_queue_size=receiver_queue_size(query),
            consumer_name=_name(query, "consumerName"),
            priority_level=priority or 0,
            max_redeliver_count=max_redeliver,
            dead_letter_topic=query.get("deadLetterTopic") or None,
            negative_ack_redelivery_delay=60000 if nack_delay is None else nack_delay,
            pull_mode=_bool(query, "pullMode"),
            crypto_failure_action=_crypto_failure_action(query),
        )


@dataclass(frozen=True, slots=True)
class ReaderParams:
    """Reader endpoint options; ``message_id`` is ``earliest``, ``latest`` or base64."""

    reader_name: str | None = None
    receiver_queue_size: int = MAX_QUEUE
    message_id: str = "latest"
    crypto_failure_action: str = "FAIL"

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ReaderParams:
        """Validate a reader's query parameters.

        Raises:
            ParamError: when one is malformed.
        """
        return cls(
            reader_name=query.get("readerName") or None,
            receiver_queue_size=receiver_queue_size(query),
            message_id=(query.get("messageId") or "").strip() or "latest",
            crypto_failure_action=_crypto_failure_action(query),
        )
