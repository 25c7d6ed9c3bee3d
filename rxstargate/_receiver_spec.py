"""What ``observe()`` accepts, checked before any traffic, as the spec a stream opens with.

A :class:`ReceiverSpec` says what to open (a consumer with a subscription, or a reader) and
makes that stream's receiving core; :func:`receiver_spec` builds one from ``observe()``'s
arguments and refuses a bad one with a ConfigurationError (an InvalidOptionError for Pulsar's
options) naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from marshmallow import Schema

from rxstargate._config import checked_seconds
from rxstargate._flow import checked_max_in_flight
from rxstargate._reader_position import EARLIEST, LATEST, Reopen
from rxstargate._receive_state import ConsumerState, ReaderState, ReceiveState
from rxstargate._topic_name import check_endpoint_fits
from rxstargate.exceptions import ConfigurationError
from rxstargate.models import MessageId, TopicName
from rxstargate.options import InitialPosition, SubscriptionType, consumer_query, reader_query

if TYPE_CHECKING:
    from rxstargate._context import ClientContext

__all__ = ["RECEIVER_QUEUE_MAX", "ReceiverSpec", "receiver_spec"]

#: The largest ``receiver_queue_size`` the options accept: a stream's default window.
RECEIVER_QUEUE_MAX = 1000

_SCHEMA_FAILURES = ("nack", "deliver")


@dataclass(frozen=True, slots=True)
class ReceiverSpec:
    """What to open: a consumer (with a subscription) or a reader."""

    topic: TopicName
    subscription: str | None
    query: dict[str, str]
    max_in_flight: int
    schema: Schema | None
    start: str | None = None  # readers: "earliest", "latest" or a wire message id
    stall_timeout: float | None = 30.0
    topics: tuple[str, str] | None = None  # v3: ("topics", "a,b") or ("topicsPattern", regex)
    deliver_schema_failures: bool = False
    on_open: Callable[[], None] | None = None  # called each time a socket opened

    def new_state(self) -> ReceiveState:
        """The receiving core of one subscription of this spec."""
        if self.subscription is not None:
            return ConsumerState(self.max_in_flight)
        return ReaderState(self.max_in_flight, self.start or LATEST)

    def url(self, context: ClientContext, reopen: Reopen) -> str:
        """The endpoint to open, at the place ``reopen`` names."""
        query = dict(self.query)
        if reopen.message_id is not None:
            query["messageId"] = reopen.message_id
        if self.subscription is None:
            return context.url("reader", self.topic, None, query)
        if self.topics is not None:
            key, value = self.topics
            query[key] = value
            return context.url_v3(self.subscription, query)
        return context.url("consumer", self.topic, self.subscription, query)


def receiver_spec(
    topic: TopicName,
    subscription: str | None,
    *,
    subscription_type: SubscriptionType | str | None,
    start: str | MessageId | None,
    max_in_flight: int,
    schema: Schema | None,
    stall_timeout: float | timedelta | None,
    schema_failures: str,
    options: dict[str, Any],
    topics: tuple[str, str] | None = None,
) -> ReceiverSpec:
    """``observe()``'s arguments as a spec: a consumer's, or without subscription a reader's.

    Raises:
        ConfigurationError: naming a bad argument, or when the endpoint's URL would be too
            long for the handshake (a subscription or options of several KiB).
        InvalidOptionError: naming an unknown option or a bad value.
    """
    max_in_flight = checked_max_in_flight(max_in_flight)
    stall = None if stall_timeout is None else checked_seconds(stall_timeout, "stall_timeout")
    if schema_failures not in _SCHEMA_FAILURES:
        raise ConfigurationError(
            f"schema_failures must be 'nack' or 'deliver', not {schema_failures!r}"
        )
    deliver = schema_failures == "deliver"
    if subscription is None:
        if topics is not None:
            raise ConfigurationError(
                "several topics need a subscription: Pulsar's multi-topic endpoint has"
                " consumers only (observe('name', ...))"
            )
        if subscription_type is not None:
            raise ConfigurationError(
                "subscription_type needs a subscription: observe(subscription=...) opens a"
                " consumer; without one it is a reader"
            )
        query, window, begin = _reader_query(start, max_in_flight, options)
        check_endpoint_fits("a reader", {"topic": topic.url_path(), "options": urlencode(query)})
        return ReceiverSpec(
            topic, None, query, window, schema, begin, stall, deliver_schema_failures=deliver
        )
    if not isinstance(subscription, str) or not subscription.strip():
        raise ConfigurationError("subscription must be a non-empty str or None (a reader)")
    query = _consumer_query(subscription_type, start, max_in_flight, options)
    parts = {"subscription": quote(subscription, safe=""), "options": urlencode(query)}
    if topics is None:
        parts["topic"] = topic.url_path()
    else:
        parts["topic list"] = urlencode([topics])
    check_endpoint_fits("a consumer", parts)
    return ReceiverSpec(
        topic, subscription, query, max_in_flight, schema, None, stall, topics, deliver
    )


def _consumer_query(
    subscription_type: SubscriptionType | str | None,
    start: str | MessageId | None,
    max_in_flight: int,
    options: dict[str, Any],
) -> dict[str, str]:
    try:
        sub_type = SubscriptionType(subscription_type or SubscriptionType.EXCLUSIVE)
    except ValueError:
        raise ConfigurationError(
            f"subscription_type must be one of {[t.value for t in SubscriptionType]},"
            f" not {subscription_type!r}"
        ) from None
    if start is not None:
        if isinstance(start, MessageId) or start not in (EARLIEST, LATEST):
            raise ConfigurationError(
                "a consumer's start must be 'earliest' or 'latest' (where a new"
                " subscription begins); Pulsar's WebSocket consumers cannot start at a"
                f" message id: use a reader (no subscription) for that, not {start!r}"
            )
        options["subscription_initial_position"] = _initial_position(start, options)
    options.setdefault("receiver_queue_size", min(max_in_flight, RECEIVER_QUEUE_MAX))
    query = consumer_query(options)
    query["subscriptionType"] = sub_type.value
    query["pullMode"] = "true"
    return query


def _initial_position(start: str, options: dict[str, Any]) -> InitialPosition:
    """Where a new subscription starts: ``start``, unless the options say otherwise."""
    position = InitialPosition(start.capitalize())
    given = options.get("subscription_initial_position")
    if given is None:
        return position
    try:
        contradicts = InitialPosition(given) is not position
    except ValueError:
        return given  # type: ignore[no-any-return]  # not a position: the options refuse it
    if contradicts:
        raise ConfigurationError(
            f"start={start!r} contradicts subscription_initial_position={given!r}"
        )
    return position


def _reader_query(
    start: str | MessageId | None, max_in_flight: int, options: dict[str, Any]
) -> tuple[dict[str, str], int, str]:
    """A reader's query, its window and its start."""
    start = LATEST if start is None else start
    if start not in (EARLIEST, LATEST) and not isinstance(start, MessageId):
        raise ConfigurationError(
            f"start must be 'earliest', 'latest' or a MessageId, not {start!r}"
        )
    # The server's window is the reader's bound: never more than max_in_flight.
    given = options.get("receiver_queue_size", RECEIVER_QUEUE_MAX)
    if isinstance(given, int) and not isinstance(given, bool) and given > 0:
        options["receiver_queue_size"] = min(max_in_flight, RECEIVER_QUEUE_MAX, given)
    query = reader_query(options)
    return query, max(1, int(query["receiverQueueSize"])), str(start)
