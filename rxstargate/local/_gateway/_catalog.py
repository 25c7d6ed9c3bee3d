"""Which topics exist, for v3 ``topicsPattern`` consumers.

Pulsar's pattern consumer asks the broker for the topics of the pattern's namespace, but
pulsar-lite does not answer that request (the official client times out after 30 s). It keeps
its namespaces, topics and subscriptions in a JSON file next to its database, rewritten when a
topic is created, so the gateway reads that file instead; it also remembers the topics its own
sockets opened, in case the file cannot be read.

The match follows Pulsar's ``TopicList.filterTopics``: persistent topics of the pattern's
namespace (the default ``RegexSubscriptionMode.PersistentOnly``), the domain taken off both the
pattern and the names, the rest matched whole. Python's ``re`` stands in for Java's regex.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("rxstargate.gateway")

_DOMAINS = ("persistent", "non-persistent")
_READ_ATTEMPTS = 3


class PatternError(Exception):
    """A ``topicsPattern`` that is not a regular expression."""


def _domainless(name: str) -> str:
    for domain in _DOMAINS:
        prefix = f"{domain}://"
        if name.startswith(prefix):
            return name.removeprefix(prefix)
    return name


def _namespace(topic: str) -> str:
    """``tenant/namespace`` (or ``tenant/cluster/namespace``) of a full topic name."""
    parts = _domainless(topic).split("/", 3)
    return "/".join(parts[:-1])


class TopicCatalog:
    """The topics the broker has, as far as the gateway can tell. Thread-safe.

    Args:
        metadata_path: pulsar-lite's metadata file, or None to know only the topics noted.
    """

    def __init__(self, metadata_path: str | None = None) -> None:
        self._metadata_path = metadata_path
        self._noted: set[str] = set()
        self._lock = threading.Lock()

    def note(self, topics: Iterable[str]) -> None:
        """Remember topics that a socket opened (they exist now)."""
        with self._lock:
            self._noted.update(topics)

    def topics(self) -> set[str]:
        """Every full topic name known (reads the broker's file; blocking)."""
        found = self._read_metadata()
        with self._lock:
            return found | self._noted

    def match(self, pattern: str, pattern_topic: str) -> list[str]:
        """The persistent topics of ``pattern_topic``'s namespace that ``pattern`` matches.

        Args:
            pattern: the ``topicsPattern`` as given.
            pattern_topic: the pattern read as a topic name (for its namespace).

        Raises:
            PatternError: when the pattern does not compile.
        """
        try:
            regex = re.compile(_domainless(pattern))
        except re.error as exc:
            raise PatternError(f"{exc} in pattern {pattern!r}") from None
        namespace = _namespace(pattern_topic)
        return sorted(
            topic
            for topic in self.topics()
            if topic.startswith("persistent://")
            and _namespace(topic) == namespace
            and regex.fullmatch(_domainless(topic))
        )

    def _read_metadata(self) -> set[str]:
        if self._metadata_path is None:
            return set()
        for attempt in range(_READ_ATTEMPTS):
            try:
                with open(self._metadata_path, encoding="utf-8") as file:
                    return set(_topics_in(json.load(file)))
            except FileNotFoundError:
                return set()  # no topic was created yet
            except (OSError, ValueError) as exc:  # caught mid-write, or not what we expect
                if attempt == _READ_ATTEMPTS - 1:
                    log.warning("cannot read the broker's topic list: %s", exc)
                time.sleep(0.01)
        return set()


def _topics_in(metadata: Any) -> Iterable[str]:
    """Full topic names in pulsar-lite's metadata document.

    Its shape (pulsar-lite 0.2): ``{"version": 2, "<file path>": {tenant: {namespace:
    {domain: {topic: {"subscriptions": {...}}}}}}, "partitioned_topics": {...}}``.
    """
    if not isinstance(metadata, dict):
        return
    for key, tenants in metadata.items():
        if key in ("version", "partitioned_topics") or not isinstance(tenants, dict):
            continue
        for tenant, namespaces in tenants.items():
            if not isinstance(namespaces, dict):
                continue
            for namespace, domains in namespaces.items():
                if not isinstance(domains, dict):
                    continue
                for domain in _DOMAINS:
                    topics = domains.get(domain)
                    if isinstance(topics, dict):
                        for local in topics:
                            yield f"{domain}://{tenant}/{namespace}/{local}"
