"""The values of Pulsar's enumerated options (subscription type, compression, ...).

Public as ``rxstargate.options.SubscriptionType`` and ``rxstargate.SubscriptionType``; kept apart
from the options' schemas so that the command line can name them without loading marshmallow.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CompressionType",
    "CryptoFailureAction",
    "HashingScheme",
    "InitialPosition",
    "MessageRoutingMode",
    "SubscriptionMode",
    "SubscriptionType",
]


class SubscriptionType(StrEnum):
    """How a subscription shares messages among its consumers."""

    EXCLUSIVE = "Exclusive"
    SHARED = "Shared"
    FAILOVER = "Failover"
    KEY_SHARED = "Key_Shared"


class SubscriptionMode(StrEnum):
    """Whether the subscription's position is stored by the broker."""

    DURABLE = "Durable"
    NON_DURABLE = "NonDurable"


class InitialPosition(StrEnum):
    """Where a new subscription starts."""

    LATEST = "Latest"
    EARLIEST = "Earliest"


class CompressionType(StrEnum):
    """Compression applied by the server-side producer."""

    NONE = "NONE"
    LZ4 = "LZ4"
    ZLIB = "ZLIB"
    ZSTD = "ZSTD"
    SNAPPY = "SNAPPY"


class HashingScheme(StrEnum):
    """How a key picks a partition."""

    JAVA_STRING_HASH = "JavaStringHash"
    MURMUR3_32_HASH = "Murmur3_32Hash"


class MessageRoutingMode(StrEnum):
    """How messages without a key pick a partition."""

    SINGLE_PARTITION = "SinglePartition"
    ROUND_ROBIN_PARTITION = "RoundRobinPartition"
    CUSTOM_PARTITION = "CustomPartition"


class CryptoFailureAction(StrEnum):
    """What the server does with a message it cannot decrypt."""

    FAIL = "FAIL"
    DISCARD = "DISCARD"
    CONSUME = "CONSUME"
