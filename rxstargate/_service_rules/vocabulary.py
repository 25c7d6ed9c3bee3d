"""Pulsar's words on the wire that the server side checks: enum constants and the name rule.

The server side (local Pulsar's gateway and MemoryPulsar) keeps its own copy, taken from Pulsar's
Java sources, instead of importing the client's enums and patterns, so that a mistake on one side
cannot pass the tests of both.
"""

from __future__ import annotations

import re
from types import MappingProxyType

# Java enum type (org.apache.pulsar.client.api) -> its constants, case-sensitive as valueOf().
ENUM_CONSTANTS = MappingProxyType(
    {
        "SubscriptionType": ("Exclusive", "Shared", "Failover", "Key_Shared"),
        "SubscriptionMode": ("Durable", "NonDurable"),
        "SubscriptionInitialPosition": ("Latest", "Earliest"),
        "CompressionType": ("NONE", "LZ4", "ZLIB", "ZSTD", "SNAPPY"),
        "HashingScheme": ("JavaStringHash", "Murmur3_32Hash"),
        "MessageRoutingMode": ("SinglePartition", "RoundRobinPartition", "CustomPartition"),
        "ConsumerCryptoFailureAction": ("FAIL", "DISCARD", "CONSUME"),
    }
)

# org.apache.pulsar.common.naming.NamedEntity: "^[-=:.\\w]*$" matched with matches(), where
# Java's \w is ASCII only (a-zA-Z_0-9). Empty parts are refused earlier, by the path rules.
_NAMED_ENTITY = re.compile(r"[-=:.A-Za-z0-9_]+")


def is_named_entity(name: str) -> bool:
    """Whether ``name`` is a valid tenant, cluster or namespace name for Pulsar."""
    return _NAMED_ENTITY.fullmatch(name) is not None
