"""Endpoint paths and query parameters, read and refused as Pulsar's WebSocket service does.

The rules themselves are the ones local Pulsar's gateway checks (:mod:`rxstargate._service_rules`);
this module turns their errors into a :class:`Refusal` with Pulsar's HTTP status and words, and
adds the two refusals Pulsar makes while opening: an empty subscription (400) and encryption
keys (500, not supported).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from rxstargate._service_rules import paths
from rxstargate._service_rules.params import (
    ConsumerParams,
    ParamError,
    ProducerParams,
    ReaderParams,
)
from rxstargate._service_rules.paths import Endpoint, PathError, Route

__all__ = [
    "Refusal",
    "consumer_params",
    "parse_path",
    "producer_params",
    "reader_params",
    "topic_name",
]

_Params = TypeVar("_Params")


class Refusal(Exception):
    """A handshake refused with an HTTP status and the server's reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def parse_path(path: str, query: Mapping[str, str]) -> Route:
    """The endpoint a request path (and, for v3, its query) names.

    Raises:
        Refusal: 404 when no endpoint lives there, 400 for a malformed topic.
    """
    try:
        route = paths.parse_path(path)
        if route.endpoint is Endpoint.MULTI_TOPIC_CONSUMER:
            route = paths.select_topics(route, query)
    except PathError as exc:
        raise Refusal(exc.status, str(exc)) from None
    return route


def topic_name(text: str) -> str:
    """A topic name completed and checked as Pulsar's ``TopicName.get`` does.

    Raises:
        Refusal: 400 for a name Pulsar refuses.
    """
    try:
        return paths.topic_name(text)
    except PathError as exc:
        raise Refusal(exc.status, str(exc)) from None


def producer_params(query: Mapping[str, str]) -> ProducerParams:
    """A producer's validated query parameters.

    Raises:
        Refusal: 400 for a malformed one, 500 for ``encryptionKeys`` (not supported).
    """
    params = _validated(ProducerParams.from_query, query)
    if params.encryption_keys:
        raise Refusal(500, "Failed to create producer: encryption is not supported")
    return params


def consumer_params(route: Route, query: Mapping[str, str]) -> ConsumerParams:
    """A consumer's (v1, v2 or v3) validated query parameters.

    Raises:
        Refusal: 400 for an empty subscription or a malformed parameter.
    """
    if not route.subscription:
        raise Refusal(400, "Empty subscription name")
    return _validated(ConsumerParams.from_query, query)


def reader_params(query: Mapping[str, str]) -> ReaderParams:
    """A reader's validated query parameters.

    Raises:
        Refusal: 400 for a malformed one.
    """
    return _validated(ReaderParams.from_query, query)


def _validated(parse: Callable[[Mapping[str, str]], _Params], query: Mapping[str, str]) -> _Params:
    try:
        return parse(query)
    except ParamError as exc:
        raise Refusal(400, f"Invalid query params: {exc}") from None
