"""Topic names: Pulsar's ``persistence://tenant/namespace/topic``, parsed and checked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

from rxstargate.exceptions import ConfigurationError, InvalidTopicNameError

__all__ = [
    "MAX_ENDPOINT_URL_BYTES",
    "MAX_TOPIC_URL_BYTES",
    "NAMED_ENTITY",
    "Persistence",
    "TopicName",
    "check_endpoint_fits",
]

# Pulsar's NamedEntity rule for tenants and namespaces: Java's ASCII \w, the whole string.
NAMED_ENTITY = re.compile(r"[-=:.A-Za-z0-9_]+")

# A topic name travels in the path of the WebSocket handshake, whose request line Pulsar's
# WebSocket service (Jetty) and local Pulsar's gateway accept up to 8 KiB long (414 past it).
# Half of that is the topic's; the rest is the endpoint's, the subscription's and the options'.
MAX_TOPIC_URL_BYTES = 4096

# What a whole endpoint (topic, subscription, options) may take of the 8 KiB: the remaining
# 2 KiB are left to the method, the server's path prefix and the headers (a token among them).
MAX_ENDPOINT_URL_BYTES = 6144


def check_endpoint_fits(what: str, parts: Mapping[str, str]) -> None:
    """Refuse an endpoint whose URL would be too long for the handshake, before any traffic.

    Args:
        what: what the endpoint opens, for the message (``"a consumer"``).
        parts: each part's name and its form in the URL (percent-encoded).

    Raises:
        ConfigurationError: naming the size, the longest part and the limit.
    """
    total = sum(len(part) for part in parts.values())
    if total > MAX_ENDPOINT_URL_BYTES:
        longest = max(parts, key=lambda name: len(parts[name]))
        raise ConfigurationError(
            f"{what}'s URL would take {total} bytes (UTF-8, percent-encoded; the {longest}"
            f" {len(parts[longest])} of them); the limit is {MAX_ENDPOINT_URL_BYTES}, so that"
            " the handshake stays within the 8 KiB request line and headers Pulsar's WebSocket"
            " service accepts (HTTP 414)"
        )


class Persistence(StrEnum):
    """A topic's domain, as written in its full name."""

    PERSISTENT = "persistent"
    NON_PERSISTENT = "non-persistent"


@dataclass(frozen=True, slots=True)
class TopicName:
    """A parsed, validated Pulsar topic name.

    Attributes:
        persistence: ``persistent`` or ``non-persistent``.
        tenant: the tenant (``public`` by default).
        namespace: the namespace within the tenant (``default`` by default).
        topic: the local name of the topic.

    Example:
        >>> TopicName.parse("orders")
        TopicName('persistent://public/default/orders')
        >>> TopicName.parse("non-persistent://acme/eu/clicks").tenant
        'acme'
    """

    persistence: Persistence
    tenant: str
    namespace: str
    topic: str

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "persistence", Persistence(self.persistence))
        except ValueError:
            raise InvalidTopicNameError(
                f"topic domain must be 'persistent' or 'non-persistent', not {self.persistence!r}"
            ) from None
        for part, value in (("tenant", self.tenant), ("namespace", self.namespace)):
            if not isinstance(value, str) or not NAMED_ENTITY.fullmatch(value):
                raise InvalidTopicNameError(
                    f"topic {part} {value!r} must be non-empty and use only letters, digits"
                    " and - = : . _"
                )
        if not isinstance(self.topic, str) or not self.topic:
            raise InvalidTopicNameError("topic name must not be empty")
        if "/" in self.topic:
            raise InvalidTopicNameError(
                f"topic local name {self.topic!r} must not contain '/'"
                " (use persistent://tenant/namespace/topic)"
            )
        if any(ord(ch) < 0x20 or ch.isspace() for ch in self.topic):
            raise InvalidTopicNameError(
                f"topic local name {self.topic!r} must not contain spaces or control characters"
            )
        in_url = len(self.url_path())
        if in_url > MAX_TOPIC_URL_BYTES:
            raise InvalidTopicNameError(
                f"topic name {str(self)[:60]!r}... takes {in_url} bytes in a URL (UTF-8,"
                f" percent-encoded); the limit is {MAX_TOPIC_URL_BYTES}, so that handshakes stay"
                " within the 8 KiB request line Pulsar's WebSocket service accepts (HTTP 414)"
            )

    def url_path(self) -> str:
        """The name as the path of an endpoint URL: ``persistent/tenant/namespace/topic``.

        Each part is percent-encoded (UTF-8), ``/`` included.

        Example:
            >>> TopicName.parse("acme/eu/café").url_path()
            'persistent/acme/eu/caf%C3%A9'
        """
        parts = (self.persistence.value, self.tenant, self.namespace, self.topic)
        return "/".join(quote(part, safe="") for part in parts)

    @classmethod
    def parse(cls, name: str | TopicName) -> TopicName:
        """Parse ``orders``, ``tenant/namespace/orders`` or a full ``persistent://...`` name.

        Raises:
            InvalidTopicNameError: naming the part of ``name`` that is wrong.
        """
        if isinstance(name, TopicName):
            return name
        if not isinstance(name, str):
            raise InvalidTopicNameError(f"topic name must be a str, not {type(name).__name__}")
        if not name:
            raise InvalidTopicNameError("topic name must not be empty")
        if "://" in name:
            domain, _, rest = name.partition("://")
            parts = rest.split("/")
            if len(parts) != 3:
                raise InvalidTopicNameError(
                    f"full topic name {name!r} must be {domain}://tenant/namespace/topic"
                )
            return cls(Persistence(domain) if domain in _DOMAINS else domain, *parts)  # type: ignore[arg-type]
        parts = name.split("/")
        if len(parts) == 1:
            return cls(Persistence.PERSISTENT, "public", "default", name)
        if len(parts) == 3:
            return cls(Persistence.PERSISTENT, *parts)
        raise InvalidTopicNameError(
            f"topic name {name!r} must be 'topic', 'tenant/namespace/topic'"
            " or 'persistent://tenant/namespace/topic'"
        )

    def __str__(self) -> str:
        return f"{self.persistence.value}://{self.tenant}/{self.namespace}/{self.topic}"

    def __repr__(self) -> str:
        return f"TopicName({str(self)!r})"


_DOMAINS = {p.value for p in Persistence}
