"""Parsing the request path of a Pulsar WebSocket endpoint, as Pulsar's handlers do."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote_plus

from rxstargate.local._gateway._vocabulary import is_named_entity

_DOMAINS = ("persistent", "non-persistent")


class Endpoint(StrEnum):
    """What a socket is for."""

    PRODUCER = "producer"
    CONSUMER = "consumer"
    READER = "reader"
    PINGPONG = "pingpong"


class PathError(Exception):
    """Raised when a path names no endpoint (404) or a malformed topic (400)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Route:
    """A parsed endpoint path.

    Attributes:
        endpoint: producer, consumer, reader or pingpong.
        topic: the full topic name (``persistent://tenant/namespace/topic``); empty for pingpong.
        subscription: the URL-decoded subscription (consumers only).
    """

    endpoint: Endpoint
    topic: str = ""
    subscription: str = ""

    def label(self) -> str:
        """``consumer persistent://t/n/topic sub=name``, for log lines."""
        text = f"{self.endpoint} {self.topic}".rstrip()
        return f"{text} sub={self.subscription}" if self.endpoint is Endpoint.CONSUMER else text


def parse_path(path: str) -> Route:
    """Parse the path part of an upgrade request (no query string).

    v2: ``/ws/v2/{producer|consumer|reader}/{domain}/{tenant}/{namespace}/{topic}[/{sub}]``;
    v1: ``/ws/{kind}/{domain}/{property}/{cluster}/{namespace}/{topic}[/{sub}]``.
    Topic and subscription are URL-decoded with ``+`` meaning a space, as Java's URLDecoder does.

    Raises:
        PathError: 404 when no endpoint lives there, 400 when the topic part is malformed.
    """
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "" or parts[1] != "ws":
        raise PathError(404, "Not Found")
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
