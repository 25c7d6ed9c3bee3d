"""What an App runs: the specs of its named producers, consumers and readers.

A spec is a frozen description: nothing in it connects. Its own fields are checked when it is
made; the Pulsar options and processing settings are checked by the App, through the very
calls that would use them (``topic.producer``, ``topic.consume``), so the errors are those.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Literal

from marshmallow import Schema

from rxstargate._flow import DEFAULT_MAX_IN_FLIGHT
from rxstargate._reconnect import Backoff
from rxstargate.exceptions import ConfigurationError
from rxstargate.models import TopicName
from rxstargate.operators import DeadLetter, MessageHandler, Retry
from rxstargate.options import SubscriptionType
from rxstargate.service._imports import is_import_path

__all__ = ["ConsumerSpec", "HandlerRef", "ProducerSpec", "ReaderSpec"]

#: A handler: a function (or ``async def``), a MessageHandler (instance or subclass), or the
#: import path ``"module:attribute"`` of one.
HandlerRef = Any

#: What becomes of a message whose handling failed for good (see ``rso.process``).
FailureSetting = Literal["nack", "error"] | DeadLetter | None


def _topic(value: object) -> str | TopicName:
    if isinstance(value, TopicName):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"topic must be a non-empty str, not {value!r}")
    return value


def _name_or_none(value: object, what: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigurationError(f"{what} must name one of the app's producers, not {value!r}")
    return value


def _schema(value: object) -> None:
    if value is None or isinstance(value, Schema):
        return
    if isinstance(value, type) and issubclass(value, Schema):
        return
    if isinstance(value, str) and is_import_path(value):
        return
    raise ConfigurationError(
        "schema must be a marshmallow Schema (instance or class) or its import path"
        f" 'module:attribute', not {value!r:.80}"
    )


def _handler(value: object) -> HandlerRef:
    if isinstance(value, str):
        if not is_import_path(value):
            raise ConfigurationError(
                f"handler must be a callable, a MessageHandler or an import path"
                f" 'module:attribute', not {value!r}"
            )
        return value
    if isinstance(value, MessageHandler) or callable(value):
        return value
    raise ConfigurationError(
        f"handler must be a callable, a MessageHandler or an import path, not {value!r:.80}"
    )


@dataclass(frozen=True, init=False)
class ProducerSpec:
    """A named producer of an :class:`~rxstargate.App`: ``topic.producer(...)``'s arguments.

    Attributes:
        topic: the topic name (``orders``, ``tenant/ns/orders`` or ``persistent://...``).
        schema: a marshmallow Schema (or its import path) that serialises objects to JSON.
        max_in_flight: the most unacknowledged messages before sends block.
        timeout: seconds a send may block for a slot or an ack.
        options: Pulsar producer options in snake_case (``batching_enabled``, ...).

    Example:
        >>> rs.ProducerSpec("receipts", batching_enabled=False).topic
        'receipts'
    """

    topic: str | TopicName
    schema: Schema | type[Schema] | str | None
    max_in_flight: int
    timeout: float | timedelta
    options: Mapping[str, Any]

    def __init__(
        self,
        topic: str | TopicName,
        *,
        schema: Schema | type[Schema] | str | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        timeout: float | timedelta = 30.0,
        **options: Any,
    ) -> None:
        _schema(schema)
        for name, value in (
            ("topic", _topic(topic)),
            ("schema", schema),
            ("max_in_flight", max_in_flight),
            ("timeout", timeout),
            ("options", MappingProxyType(dict(options))),
        ):
            object.__setattr__(self, name, value)


@dataclass(frozen=True, init=False)
class _HandlingSpec:
    """What consumers and readers share: a handler, its failure policy and where results go."""

    topic: str | TopicName
    handler: HandlerRef
    timeout: float | timedelta | None
    retry: Retry | None
    on_failure: FailureSetting
    dead_letter_to: str | None
    publish_to: str | None
    max_in_flight: int
    restart: Backoff | None
    options: Mapping[str, Any]

    def _set_handling(self, topic: object, handler: object, settings: dict[str, Any]) -> None:
        on_failure = settings["on_failure"]
        if on_failure not in (None, "nack", "error") and not isinstance(on_failure, DeadLetter):
            raise ConfigurationError(
                "on_failure must be 'nack', 'error' or rso.dead_letter(producer)"
                f" (or dead_letter_to='a producer of the app'), not {on_failure!r}"
            )
        dead_letter_to = _name_or_none(settings["dead_letter_to"], "dead_letter_to")
        if dead_letter_to is not None and on_failure not in (None, "nack"):
            raise ConfigurationError(
                f"dead_letter_to={dead_letter_to!r} contradicts on_failure={on_failure!r}:"
                " give one of them"
            )
        restart = settings["restart"]
        if restart is not None and not isinstance(restart, Backoff):
            raise ConfigurationError(
                f"restart must be a rxstargate.Backoff or None, not {restart!r}"
            )
        object.__setattr__(self, "topic", _topic(topic))
        object.__setattr__(self, "handler", _handler(handler))
        object.__setattr__(self, "publish_to", _name_or_none(settings["publish_to"], "publish_to"))
        object.__setattr__(self, "dead_letter_to", dead_letter_to)
        object.__setattr__(self, "options", MappingProxyType(dict(settings.pop("options"))))
        for name in ("timeout", "retry", "on_failure", "max_in_flight", "restart"):
            object.__setattr__(self, name, settings[name])


@dataclass(frozen=True, init=False)
class ConsumerSpec(_HandlingSpec):
    """A named consumer of an :class:`~rxstargate.App`: a supervised ``topic.consume(...)``.

    Attributes:
        topic: the topic name.
        subscription: the subscription name.
        handler: the work for one message: a function (or ``async def``), a
            ``rso.MessageHandler`` (instance or subclass), or its import path
            ``"module:attribute"``.
        subscription_type: ``Shared`` (default), ``Key_Shared``, ``Failover`` or ``Exclusive``.
        concurrency: the most handler calls at once.
        key_ordered: keep each key's order while running keys in parallel.
        timeout: seconds a handler call may take before it counts as failed.
        retry: an ``rso.Retry`` for failed calls.
        on_failure: ``"nack"`` (default), ``"error"`` or ``rso.dead_letter(producer)``.
        dead_letter_to: the name of one of the app's producers: messages that failed for good
            are sent there, then acked (``rso.dead_letter``).
        publish_to: the name of one of the app's producers: each handler result is sent there
            (with the input's key and properties) and the input is acked only once its output
            is stored; a result of None publishes nothing.
        max_in_flight: the most delivered-but-unsettled messages.
        restart: the Backoff between restarts after failures retrying can fix.
        options: the rest of ``topic.observe``'s arguments (``start``, ``schema``, ...) and
            Pulsar's consumer options in snake_case (``max_redeliver_count``, ...).

    Example:
        >>> spec = rs.ConsumerSpec("orders", "billing", handler="shop:charge",
        ...                        subscription_type="Key_Shared", key_ordered=True)
        >>> spec.subscription_type
        'Key_Shared'
    """

    subscription: str
    subscription_type: SubscriptionType | str
    concurrency: int
    key_ordered: bool

    def __init__(
        self,
        topic: str | TopicName,
        subscription: str,
        *,
        handler: HandlerRef,
        subscription_type: SubscriptionType | str = SubscriptionType.SHARED,
        concurrency: int = 1,
        key_ordered: bool = False,
        timeout: float | timedelta | None = None,
        retry: Retry | None = None,
        on_failure: FailureSetting = None,
        dead_letter_to: str | None = None,
        publish_to: str | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        restart: Backoff | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(subscription, str) or not subscription.strip():
            raise ConfigurationError(f"subscription must be a non-empty str, not {subscription!r}")
        try:
            kind = SubscriptionType(subscription_type)
        except ValueError:
            raise ConfigurationError(
                f"subscription_type must be one of {[t.value for t in SubscriptionType]},"
                f" not {subscription_type!r}"
            ) from None
        settings = dict(locals())
        self._set_handling(topic, handler, settings)
        object.__setattr__(self, "subscription", subscription)
        object.__setattr__(self, "subscription_type", kind.value)
        object.__setattr__(self, "concurrency", concurrency)
        object.__setattr__(self, "key_ordered", key_ordered)


@dataclass(frozen=True, init=False)
class ReaderSpec(_HandlingSpec):
    """A named reader of an :class:`~rxstargate.App`: a handler over a topic, no subscription.

    The handler runs on one message at a time, in order: a reader's credit comes back when a
    message is handled, so running several at once would not be bounded. After a restart the
    reader resumes after the last message handled.

    Attributes:
        topic: the topic name.
        handler: as :class:`ConsumerSpec`'s.
        start: ``"latest"`` (default), ``"earliest"`` or a MessageId (exclusive).
        timeout, retry, on_failure, dead_letter_to, publish_to, max_in_flight, restart:
            as :class:`ConsumerSpec`'s (a reader's nack only skips the message).
        options: the rest of ``topic.observe``'s arguments and Pulsar's reader options.

    Example:
        >>> rs.ReaderSpec("orders", handler=print, start="earliest").start
        'earliest'
    """

    start: Any

    def __init__(
        self,
        topic: str | TopicName,
        *,
        handler: HandlerRef,
        start: Any = "latest",
        timeout: float | timedelta | None = None,
        retry: Retry | None = None,
        on_failure: FailureSetting = None,
        dead_letter_to: str | None = None,
        publish_to: str | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        restart: Backoff | None = None,
        **options: Any,
    ) -> None:
        settings = dict(locals())
        self._set_handling(topic, handler, settings)
        object.__setattr__(self, "start", start)
