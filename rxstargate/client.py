"""The client and its topics: the entry points of rxstargate.

A :class:`Client` holds the WebSocket URL, credentials and TLS settings and supervises every
socket opened through it: producers, consumers and readers reconnect after a drop with
capped exponential backoff, and :meth:`Client.close` ends every socket and thread.

Threads: each socket has one receive thread (``rxstargate-producer-<topic>``,
``rxstargate-consumer-<topic>``, ``rxstargate-reader-<topic>``) on which that socket's
callbacks run (``producer.acks`` observers, ``observe()`` observers); each client has one
``rxstargate-keepalive`` thread that pings idle sockets. Sends, acks and nacks may be
called from any thread.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from marshmallow import Schema
from reactivex import Observable

from rxstargate._context import ClientContext
from rxstargate._producer import Producer
from rxstargate._receiver import ReceiverSpec, observe
from rxstargate._reconnect import Backoff
from rxstargate._transport import Keepalive, TlsOptions, TransportConfig, redact_url
from rxstargate.exceptions import ConfigurationError, StargateError
from rxstargate.models import Message, MessageId, TopicName
from rxstargate.options import SubscriptionType, consumer_query, producer_query, reader_query

__all__ = ["Client", "Topic"]


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class Client:
    """A connection point to Pulsar's WebSocket API.

    Args:
        url: ``ws://host:port`` or ``wss://host:port`` of the WebSocket service.
        token: a JWT sent as ``Authorization: Bearer``; never logged or shown in reprs.
        tls: TLS settings for ``wss://`` (CA file, client certificate, hostname check).
        connect_timeout: seconds to open a socket and finish its handshake.
        ping_interval: seconds of silence before a ping (servers drop sessions idle 5 min).
        ping_timeout: seconds to wait for the pong before the socket counts as dropped.
        reconnect: the backoff policy for dropped connections.

    Raises:
        ConfigurationError: when the URL is not ws:// or wss://.

    Example:
        >>> with rs.Client("ws://127.0.0.1:8080") as client:  # doctest: +SKIP
        ...     client.topic("orders").producer().send(b"hi").ok
        True
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        tls: TlsOptions | None = None,
        connect_timeout: float | timedelta = 10.0,
        ping_interval: float | timedelta = 30.0,
        ping_timeout: float | timedelta = 10.0,
        reconnect: Backoff | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise ConfigurationError(f"url must start with ws:// or wss://, not {url!r}")
        config = TransportConfig(
            token=token,
            tls=tls,
            connect_timeout=_seconds(connect_timeout),
            ping_interval=_seconds(ping_interval),
            ping_timeout=_seconds(ping_timeout),
        )
        self.url = url.rstrip("/")
        self._context = ClientContext(
            base_url=self.url,
            transport=config,
            backoff=reconnect or Backoff(),
            keepalive=Keepalive(config.ping_interval, config.ping_timeout),
        )

    def topic(self, name: str | TopicName) -> Topic:
        """The topic called ``name`` (``orders`` is ``persistent://public/default/orders``).

        Raises:
            InvalidTopicNameError: naming the part of ``name`` that is wrong.

        Example:
            >>> rs.Client("ws://localhost:8080").topic("orders").name  # doctest: +SKIP
            TopicName('persistent://public/default/orders')
        """
        return Topic(self._context, TopicName.parse(name))

    @property
    def errors(self) -> Observable[StargateError]:
        """Non-fatal problems: malformed frames, payloads that fail their schema (hot stream).

        Observers run on the receive thread that met the problem; it completes on close.
        """
        return self._context.errors.observable()

    @property
    def error_count(self) -> int:
        """How many non-fatal problems were reported on :attr:`errors` so far."""
        return self._context.error_count

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._context.closed

    def close(self) -> None:
        """Close every producer, consumer and reader socket and stop every thread. Idempotent.

        Producers report their unacknowledged messages as failed acks; subscriptions end
        without a terminal event (as if disposed).

        Example:
            >>> client = rs.Client("ws://127.0.0.1:8080")  # doctest: +SKIP
            >>> client.close()  # doctest: +SKIP
        """
        self._context.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        auth = ", token=<hidden>" if self._context.transport.token else ""
        return f"Client({redact_url(self.url)!r}{auth})"


class Topic:
    """One topic of a client: make producers and observe messages.

    Attributes:
        name: the parsed topic name.

    Example:
        >>> topic = client.topic("acme/eu/orders")  # doctest: +SKIP
        >>> topic.name.tenant  # doctest: +SKIP
        'acme'
    """

    def __init__(self, context: ClientContext, name: TopicName) -> None:
        self._context = context
        self.name = name

    def producer(
        self,
        *,
        schema: Schema | None = None,
        max_in_flight: int = 1000,
        timeout: float | timedelta = 30.0,
        **options: Any,
    ) -> Producer[Any]:
        """A producer on this topic (an Rx Observer); its socket opens on the first send.

        Args:
            schema: a marshmallow Schema that serialises objects to JSON payloads.
            max_in_flight: the most unacknowledged messages before sends block.
            timeout: seconds a send may block for a slot or an ack.
            **options: Pulsar producer parameters in snake_case (``send_timeout_millis``,
                ``batching_enabled``, ``producer_name``, ``compression_type``, ...).

        Raises:
            InvalidOptionError: naming an unknown option or a bad value (no traffic yet).

        Example:
            >>> topic.producer(batching_enabled=True, compression_type="LZ4")  # doctest: +SKIP
            Producer(topic=TopicName('persistent://public/default/orders'), new, pending=0)
        """
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ConfigurationError("max_in_flight must be a positive int")
        query = producer_query(options)
        return Producer(
            self._context,
            self.name,
            query,
            schema=schema,
            max_in_flight=max_in_flight,
            timeout=_seconds(timeout),
        )

    def observe(
        self,
        subscription: str | None = None,
        *,
        subscription_type: SubscriptionType | str = SubscriptionType.EXCLUSIVE,
        start: str | MessageId = "latest",
        max_in_flight: int = 1000,
        schema: Schema | None = None,
        **options: Any,
    ) -> Observable[Message[Any]]:
        """The topic's messages as a cold Observable: a consumer, or a reader without subscription.

        Each subscription opens its own socket; disposing it closes the socket. At most
        ``max_in_flight`` messages are delivered and not yet acked or nacked: a pipeline
        that stops settling stops receiving. Callbacks run on the socket's receive thread.
        Readers take back credit on ``ack()`` (a reader's window is at most 1000); readers
        cannot ask for redelivery, so a reader message's ``nack()`` only returns its credit.

        Marble::

            broker:   --a--b--c--d--...
            observe:  --a--b--c--d--...   (until disposed; errors end it, never a close)

        Args:
            subscription: the subscription name; None opens a reader.
            subscription_type: ``Exclusive``, ``Shared``, ``Failover`` or ``Key_Shared``.
            start: readers only: ``earliest``, ``latest`` or a MessageId (exclusive).
            max_in_flight: the most delivered-but-unsettled messages.
            schema: a marshmallow Schema; ``Message.value`` is then the loaded object, and a
                payload that does not load is reported on ``client.errors`` and nacked.
            **options: Pulsar consumer or reader parameters in snake_case
                (``ack_timeout_millis``, ``negative_ack_redelivery_delay``,
                ``dead_letter_topic``, ``max_redeliver_count``, ``receiver_queue_size``, ...).

        Raises:
            InvalidOptionError: naming an unknown option or a bad value (no traffic yet).

        Example:
            >>> topic.observe("billing", subscription_type="Shared").subscribe(  # doctest: +SKIP
            ...     rs.acknowledger())
        """
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ConfigurationError("max_in_flight must be a positive int")
        if subscription is not None:
            if not isinstance(subscription, str) or not subscription.strip():
                raise ConfigurationError("subscription must be a non-empty str")
            try:
                sub_type = SubscriptionType(subscription_type)
            except ValueError:
                raise ConfigurationError(
                    f"subscription_type must be one of {[t.value for t in SubscriptionType]},"
                    f" not {subscription_type!r}"
                ) from None
            options.setdefault("receiver_queue_size", min(max_in_flight, 1000))
            query = consumer_query(options)
            query["subscriptionType"] = sub_type.value
            query["pullMode"] = "true"
            spec = ReceiverSpec(self.name, subscription, query, max_in_flight, schema)
        else:
            if start not in ("earliest", "latest") and not isinstance(start, MessageId):
                raise ConfigurationError(
                    f"start must be 'earliest', 'latest' or a MessageId, not {start!r}"
                )
            options.setdefault("receiver_queue_size", min(max_in_flight, 1000))
            query = reader_query(options)
            window = min(max_in_flight, int(query["receiverQueueSize"]) or 1)
            spec = ReceiverSpec(self.name, None, query, window, schema, start=str(start))
        return observe(self._context, spec)

    def __repr__(self) -> str:
        return f"Topic({str(self.name)!r})"
