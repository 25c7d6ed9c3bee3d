"""Endpoint paths and query parameters, read and refused as Pulsar's WebSocket service does.

Paths follow Pulsar's handlers: ``/ws/v2/{producer|consumer|reader}/{domain}/{tenant}/
{namespace}/{topic}[/{subscription}]``, the v1 form with a cluster, and the v3 multi-topic
consumer ``/ws/v3/consumer/{subscription}?topics=a,b`` or ``?topicsPattern=regex``; names are
URL-decoded as Java's URLDecoder does (``+`` is a space). Numbers follow Java's
``Integer.parseInt``/``Long.parseLong``, booleans ``Boolean.parseBoolean`` (never an error),
enums are case-sensitive Java names. A refusal carries Pulsar's HTTP status and words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

__all__ = [
    "ConsumerParams",
    "ProducerParams",
    "ReaderParams",
    "Refusal",
    "Route",
    "parse_path",
    "receiver_window",
]

_DOMAINS = ("persistent", "non-persistent")
_NAMED_ENTITY = re.compile(r"[-=:.A-Za-z0-9_]+")  # Pulsar's NamedEntity, Java's ASCII \w
_INTEGER = re.compile(r"[+-]?[0-9]+")
_ENUMS = {
    "SubscriptionType": ("Exclusive", "Shared", "Failover", "Key_Shared"),
    "SubscriptionMode": ("Durable", "NonDurable"),
    "SubscriptionInitialPosition": ("Latest", "Earliest"),
    "CompressionType": ("NONE", "LZ4", "ZLIB", "ZSTD", "SNAPPY"),
    "HashingScheme": ("JavaStringHash", "Murmur3_32Hash"),
    "MessageRoutingMode": ("SinglePartition", "RoundRobinPartition", "CustomPartition"),
}
MAX_QUEUE = 1000


class Refusal(Exception):
    """A handshake refused with an HTTP status and the server's reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Route:
    """A parsed endpoint path: ``kind`` is producer, consumer, reader, pingpong or ``v3``
    (the multi-topic consumer, whose ``topics`` or ``pattern`` come from the query)."""

    kind: str
    topic: str = ""
    subscription: str = ""
    topics: tuple[str, ...] = field(default=())
    pattern: str | None = None


def is_named_entity(name: str) -> bool:
    """Whether ``name`` is a valid tenant, cluster or namespace name for Pulsar."""
    return _NAMED_ENTITY.fullmatch(name) is not None


def parse_path(path: str, query: Mapping[str, str]) -> Route:
    """The endpoint a request path (and, for v3, its query) names.

    Raises:
        Refusal: 404 when no endpoint lives there, 400 for a malformed topic or subscription.
    """
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "" or parts[1] != "ws":
        raise Refusal(404, "Not Found")
    if parts[2] == "v3":
        if len(parts) < 4 or parts[3] != "consumer":
            raise Refusal(404, "Not Found")
        return _v3_route(unquote_plus(parts[4]) if len(parts) > 4 else "", query)
    v2 = parts[2] == "v2"
    kind_index = 3 if v2 else 2
    kind = parts[kind_index] if len(parts) > kind_index else ""
    if kind == "pingpong" and len(parts) == kind_index + 1:
        return Route("pingpong")
    if kind not in ("producer", "consumer", "reader"):
        raise Refusal(404, "Not Found")
    if len(parts) < 8:
        raise Refusal(400, f"Invalid topic name: path {path!r} has too few segments")
    domain = parts[kind_index + 1]
    if domain not in _DOMAINS:
        raise Refusal(400, f"Invalid topic domain: {domain!r}")
    namespace = parts[5:7] if v2 else parts[4:7]
    for name in namespace:
        if not is_named_entity(name):
            raise Refusal(400, f"Invalid namespace name part: {name!r}")
    subscription = ""
    if kind == "consumer":
        if len(parts) != 9:
            raise Refusal(400, f"Invalid consumer path: {path!r} must have exactly 9 segments")
        local, subscription = unquote_plus(parts[7]), unquote_plus(parts[8])
        if not subscription:
            raise Refusal(400, "Empty subscription name")
    else:
        local = unquote_plus("/".join(p for p in parts[7:] if p))
    if not local:
        raise Refusal(400, "Invalid topic name: empty topic")
    return Route(kind, f"{domain}://{'/'.join(namespace)}/{local}", subscription)


def topic_name(text: str) -> str:
    """A topic name completed and checked as Pulsar's ``TopicName.get`` does.

    Raises:
        Refusal: 400 for a name Pulsar refuses.
    """
    if "://" not in text:
        parts = text.split("/")
        if len(parts) == 1 and text:
            text = f"persistent://public/default/{text}"
        elif len(parts) == 3:
            text = f"persistent://{text}"
        else:
            raise Refusal(400, f"Invalid short topic name '{text}'")
    domain, _, rest = text.partition("://")
    parts = rest.split("/", 3)
    if domain not in _DOMAINS or len(parts) < 3 or not parts[-1]:
        raise Refusal(400, f"Invalid topic name: {text}")
    for name in parts[:-1]:
        if not is_named_entity(name):
            raise Refusal(400, f"Invalid namespace name part: {name!r}")
    return text


def _v3_route(subscription: str, query: Mapping[str, str]) -> Route:
    pattern, listed = query.get("topicsPattern"), query.get("topics")
    if pattern is None and listed is None:
        raise Refusal(400, "Should set topics or topicsPattern")
    if pattern is not None and listed is not None:
        raise Refusal(400, "Topics must be null when use topicsPattern")
    if pattern is not None:
        route = Route("v3", topic_name(pattern), subscription, pattern=pattern)
    else:
        assert listed is not None
        names: dict[str, None] = {}
        for name in listed.split(","):
            if not name.strip():
                raise Refusal(400, "topicNames cannot have blank topic")
            names[topic_name(name.strip())] = None
        route = Route("v3", next(iter(names)), subscription, tuple(names))
    if not subscription:
        raise Refusal(400, "Empty subscription name")
    return route


# --- query parameters -----------------------------------------------------------------------------


def _invalid(detail: str) -> Refusal:
    return Refusal(400, f"Invalid query params: {detail}")


def _int(query: Mapping[str, str], name: str, *, long: bool = False) -> int | None:
    text = query.get(name)
    if text is None:
        return None
    digits = text.lstrip("+-").lstrip("0") or "0"
    limit = 2**63 - 1 if long else 2**31 - 1
    if not _INTEGER.fullmatch(text) or len(digits) > 19:
        raise _invalid(f'For input string: "{text}"')
    value = -int(digits) if text.startswith("-") else int(digits)
    if not -limit - 1 <= value <= limit:
        raise _invalid(f'For input string: "{text}"')
    return value


def _at_least(value: int | None, least: int, message: str) -> int | None:
    if value is not None and value < least:
        raise _invalid(message)
    return value


def _enum(query: Mapping[str, str], name: str, java_type: str, default: str) -> str:
    text = query.get(name)
    if text is None:
        return default
    if text not in _ENUMS[java_type]:
        raise _invalid(f"No enum constant org.apache.pulsar.client.api.{java_type}.{text}")
    return text


def _name(query: Mapping[str, str], name: str) -> str | None:
    text = query.get(name)
    if text is not None and not text.strip():
        raise _invalid(f"{name} cannot be blank")
    return text


def receiver_window(query: Mapping[str, str]) -> int:
    """The delivery window: ``receiverQueueSize`` capped at 1000, 0 meaning 1."""
    size = _at_least(_int(query, "receiverQueueSize"), 0, "receiverQueueSize needs to be >= 0")
    return MAX_QUEUE if size is None else max(1, min(size, MAX_QUEUE))


@dataclass(frozen=True, slots=True)
class ProducerParams:
    """Producer endpoint options (validated; a producer name must be unique on its topic)."""

    producer_name: str | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ProducerParams:
        """Validate a producer's query parameters.

        Raises:
            Refusal: 400 for a malformed one, 500 for ``encryptionKeys`` (not supported).
        """
        _at_least(_int(query, "sendTimeoutMillis"), 0, "sendTimeout needs to be >= 0")
        _int(query, "batchingMaxMessages")
        _at_least(_int(query, "maxPendingMessages"), 0, "maxPendingMessages needs to be >= 0")
        _at_least(
            _int(query, "batchingMaxPublishDelay", long=True),
            1,
            "configured value for batching delay must be at least 1ms",
        )
        _int(query, "initialSequenceId", long=True)
        _enum(query, "hashingScheme", "HashingScheme", "JavaStringHash")
        _enum(query, "messageRoutingMode", "MessageRoutingMode", "SinglePartition")
        _enum(query, "compressionType", "CompressionType", "NONE")
        name = _name(query, "producerName")
        if query.get("encryptionKeys"):
            raise Refusal(500, "Failed to create producer: encryption is not supported")
        return cls(name)


@dataclass(frozen=True, slots=True)
class ConsumerParams:
    """Consumer endpoint options."""

    subscription_type: str = "Exclusive"
    initial_position: str = "Latest"
    ack_timeout_millis: int = 0
    receiver_queue_size: int = MAX_QUEUE
    consumer_name: str | None = None
    priority_level: int = 0
    max_redeliver_count: int | None = None
    dead_letter_topic: str | None = None
    negative_ack_redelivery_delay: int = 60000
    pull_mode: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ConsumerParams:
        """Validate a consumer's query parameters.

        Raises:
            Refusal: 400 for a malformed one.
        """
        ack_timeout = _int(query, "ackTimeoutMillis", long=True) or 0
        if ack_timeout != 0 and ack_timeout < 1000:
            raise _invalid("Ack timeout should be greater than 1000 ms")
        sub_type = _enum(query, "subscriptionType", "SubscriptionType", "Exclusive")
        _enum(query, "subscriptionMode", "SubscriptionMode", "Durable")
        position = _enum(query, "subscriptionInitialPosition", "SubscriptionInitialPosition", "")
        priority = _at_least(_int(query, "priorityLevel"), 0, "priorityLevel needs to be >= 0")
        nack_delay = _at_least(
            _int(query, "negativeAckRedeliveryDelay", long=True),
            0,
            "negativeAckRedeliveryDelay needs to be >= 0",
        )
        max_redeliver = _int(query, "maxRedeliverCount")
        dead_letter = "maxRedeliverCount" in query or "deadLetterTopic" in query
        if dead_letter and (max_redeliver or 0) < 1:
            raise _invalid("MaxRedeliverCount must be > 0.")
        return cls(
            subscription_type=sub_type,
            initial_position=position or "Latest",
            ack_timeout_millis=ack_timeout,
            receiver_queue_size=receiver_window(query),
            consumer_name=_name(query, "consumerName"),
            priority_level=priority or 0,
            max_redeliver_count=max_redeliver,
            dead_letter_topic=query.get("deadLetterTopic") or None,
            negative_ack_redelivery_delay=60000 if nack_delay is None else nack_delay,
            pull_mode=query.get("pullMode", "").lower() == "true",
        )


@dataclass(frozen=True, slots=True)
class ReaderParams:
    """Reader endpoint options; ``message_id`` is ``earliest``, ``latest`` or base64."""

    receiver_queue_size: int = MAX_QUEUE
    message_id: str = "latest"

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ReaderParams:
        """Validate a reader's query parameters.

        Raises:
            Refusal: 400 for a malformed one.
        """
        return cls(
            receiver_queue_size=receiver_window(query),
            message_id=(query.get("messageId") or "").strip() or "latest",
        )
