"""Parsing the request path of a Pulsar WebSocket endpoint, as Pulsar's handlers do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from urllib.parse import unquote_plus

from rxstargate._service_rules.vocabulary import is_named_entity

_DOMAINS = ("persistent", "non-persistent")


class Endpoint(StrEnum):
    """What a socket is for."""

    PRODUCER = "producer"
    CONSUMER = "consumer"
    READER = "reader"
    PINGPONG = "pingpong"
    MULTI_TOPIC_CONSUMER = "consumer v3"


class PathError(Exception):
    """Raised when a path names no endpoint (404) or a malformed topic (400)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Route:
    """A parsed endpoint path.

    Attributes:
        endpoint: producer, consumer, reader, pingpong or the v3 multi-topic consumer.
        topic: the full topic name (``persistent://tenant/namespace/topic``); empty for pingpong.
            For v3, what Pulsar's handler takes as its topic: the first one listed, or the
            pattern read as a topic name.
        subscription: the URL-decoded subscription (consumers only).
        topics: v3 with ``topics``: the full names listed, without duplicates.
        pattern: v3 with ``topicsPattern``: the regular expression as given.
    """

    endpoint: Endpoint
    topic: str = ""
    subscription: str = ""
    topics: tuple[str, ...] = ()
    pattern: str | None = None

    def label(self) -> str:
        """``consumer persistent://t/n/topic sub=name``, for log lines."""
        if self.endpoint is Endpoint.MULTI_TOPIC_CONSUMER:
            what = (
                f"topicsPattern={self.pattern}"
                if self.pattern
                else "topics=" + ",".join(self.topics)
            )
            return f"{self.endpoint} {what} sub={self.subscription}"
        text = f"{self.endpoint} {self.topic}".rstrip()
        return f"{text} sub={self.subscription}" if self.endpoint is Endpoint.CONSUMER else text


def parse_path(path: str) -> Route:
    """Parse the path part of an upgrade request (no query string).

    v3: ``/ws/v3/consumer/{subscription}``, topics in the query (see :func:`select_topics`);
    v2: ``/ws/v2/{producer|consumer|reader}/{domain}/{tenant}/{namespace}/{topic}[/{sub}]``;
    v1: ``/ws/{kind}/{domain}/{property}/{cluster}/{namespace}/{topic}[/{sub}]``.
    Topic and subscription are URL-decoded with ``+`` meaning a space, as Java's URLDecoder does.

    Raises:
        PathError: 404 when no endpoint lives there, 400 when the topic part is malformed.
    """
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "" or parts[1] != "ws":
        raise PathError(404, "Not Found")
    if parts[2] == "v3":
        if len(parts) < 4 or parts[3] != "consumer":
            raise PathError(404, "Not Found")
        # Pulsar reads segment 4 as the subscription and ignores what follows; it is checked
        # (not empty) after the topics, as Pulsar's handler does.
        return Route(
            Endpoint.MULTI_TOPIC_CONSUMER,
            subscription=unquote_plus(parts[4]) if len(parts) > 4 else "",
        )
    v2 = parts[2] == "v2"
    kind_index = 3 if v2 else 2
    kind = parts[kind_index] if len(parts) > kind_index else ""
    if kind == "pingpong" and len(parts) == kind_index + 1:
        return Route(Endpoint.PINGPONG)
    try:
        endpoint = Endpoint(kind)
    except ValueError:
        raise PathError(404, "Not Found") from None
    if endpoint is Endpoint.PINGPONG:
        raise PathError(404, "Not Found")
    if len(parts) < 8:
        raise PathError(400, f"Invalid topic name: path {path!r} has too few segments")
    domain = parts[kind_index + 1]
    if domain not in _DOMAINS:
        raise PathError(400, f"Invalid topic domain: {domain!r}")
    namespace_parts = parts[4:7] if not v2 else parts[5:7]
    for name in namespace_parts:
        if not is_named_entity(name):
            raise PathError(400, f"Invalid namespace name part: {name!r}")
    subscription = ""
    if endpoint is Endpoint.CONSUMER:
        if len(parts) != 9:
            raise PathError(400, f"Invalid consumer path: {path!r} must have exactly 9 segments")
        local_parts = [parts[7]]
        subscription = unquote_plus(parts[8])
    else:
        local_parts = [p for p in parts[7:] if p]
    local = unquote_plus("/".join(local_parts))
    if not local:
        raise PathError(400, "Invalid topic name: empty topic")
    topic = f"{domain}://{'/'.join(namespace_parts)}/{local}"
    return Route(endpoint, topic, subscription)


def topic_name(text: str) -> str:
    """A topic name completed and checked as Pulsar's ``TopicName.get`` does.

    ``orders`` is ``persistent://public/default/orders``, ``tenant/ns/orders`` is
    ``persistent://tenant/ns/orders``; a full name has 3 parts after the domain (or 4: the v1
    form with a cluster), whose tenant, cluster and namespace are checked.

    Raises:
        PathError: 400 for a name Pulsar refuses.
    """
    if "://" not in text:
        parts = text.split("/")
        if len(parts) == 1 and text:
            text = f"persistent://public/default/{text}"
        elif len(parts) == 3:
            text = f"persistent://{text}"
        else:
            raise PathError(400, f"Invalid short topic name '{text}'")
    domain, _, rest = text.partition("://")
    if domain not in _DOMAINS:
        raise PathError(400, f"Invalid topic domain: '{domain}'")
    parts = rest.split("/", 3)
    if len(parts) < 3 or not parts[-1]:
        raise PathError(400, f"Invalid topic name: {text}")
    for name in parts[:-1]:
        if not is_named_entity(name):
            raise PathError(400, f"Invalid namespace name part: {name!r}")
    return text


def select_topics(route: Route, query: Mapping[str, str]) -> Route:
    """The v3 route with its topics (``topics``) or its pattern (``topicsPattern``).

    Each listed name is trimmed and completed (:func:`topic_name`); duplicates count once, as
    in Pulsar's consumer builder. A pattern is checked here as a topic name and compiled later.

    Raises:
        PathError: 400 with Pulsar's words when neither or both are given, or a name is bad.
    """
    pattern = query.get("topicsPattern")
    listed = query.get("topics")
    if pattern is None and listed is None:
        raise PathError(400, "Should set topics or topicsPattern")
    if pattern is not None and listed is not None:
        raise PathError(400, "Topics must be null when use topicsPattern")
    if pattern is not None:
        return replace(route, topic=topic_name(pattern), pattern=pattern)
    assert listed is not None
    topics: dict[str, None] = {}
    for name in listed.split(","):
        if not name.strip():
            raise PathError(400, "topicNames cannot have blank topic")
        topics[topic_name(name.strip())] = None
    names = tuple(topics)
    return replace(route, topic=names[0], topics=names)
