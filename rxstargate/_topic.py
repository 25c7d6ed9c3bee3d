"""A client's topics: producers, subscriptions and the conveniences built on them.

:class:`Topic` is one topic (``client.topic(name)``); :class:`Topics` several observed as one
stream (``client.topics(...)``). Their arguments are checked before any traffic.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from marshmallow import Schema
from reactivex import abc

from rxstargate._config import checked_seconds
from rxstargate._context import ClientContext
from rxstargate._flow import DEFAULT_MAX_IN_FLIGHT, checked_max_in_flight
from rxstargate._peek import peek
from rxstargate._producer import Producer
from rxstargate._receiver import observe
from rxstargate._receiver_spec import RECEIVER_QUEUE_MAX, receiver_spec
from rxstargate._reconnect import Backoff
from rxstargate._topic_name import check_endpoint_fits
from rxstargate.exceptions import ConfigurationError
from rxstargate.models import Message, MessageId, TopicName
from rxstargate.notebook import Messages
from rxstargate.operators._failure import FailurePolicy
from rxstargate.operators._process import Handler
from rxstargate.operators._retry import Retry
from rxstargate.options import SubscriptionType, producer_query
from rxstargate.pipeline import Pipeline
from rxstargate.streams import Stream

if TYPE_CHECKING:
    from rxstargate.notebook import LiveView

__all__ = ["Topic", "Topics"]


class Topic:
    """One topic of a client: make producers and observe messages.

    Settling: a consumer's message is settled by ``ack()`` or ``nack()``, and a pipeline that
    stops settling stops receiving. A reader's message is settled when the observer's
    ``on_next`` returns (or by ``ack()``/``nack()`` before that), so
    ``observe(start="earliest").subscribe(print)`` reads a topic of any length; readers
    cannot ask for redelivery, so a reader message's ``nack()`` only returns its credit.

    Marble::

        broker:   --a--b--c--d--...
        observe:  --a--b--c--d--...   (until disposed; client.close() completes it)

    Attributes:
        name: the parsed topic name.

    Example:
        >>> topic = client.topic("acme/eu/orders")  # doctest: +SKIP
        >>> topic.name.tenant  # doctest: +SKIP
        'acme'
    """

    _multi: tuple[str, str] | None = None

    def __init__(self, context: ClientContext, name: TopicName) -> None:
        self._context = context
        self.name = name

    def producer(
        self,
        *,
        schema: Schema | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
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
        window = checked_max_in_flight(max_in_flight)
        wait = checked_seconds(timeout, "timeout")
        query = producer_query(options)
        check_endpoint_fits(
            "a producer", {"topic": self.name.url_path(), "options": urlencode(query)}
        )
        return Producer(
            self._context, self.name, query, schema=schema, max_in_flight=window, timeout=wait
        )

    def observe(
        self,
        subscription: str | None = None,
        *,
        subscription_type: SubscriptionType | str | None = None,
        start: str | MessageId | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        schema: Schema | None = None,
        stall_timeout: float | timedelta | None = 30.0,
        schema_failures: str = "nack",
        **options: Any,
    ) -> Stream[Message[Any]]:
        """The topic's messages as a cold Observable: a consumer, or a reader without subscription.

        Each subscription opens its own socket; disposing it closes the socket, and
        ``client.close()`` completes the stream. At most ``max_in_flight`` messages are
        delivered and not yet settled: see the class docstring for how each kind settles.
        Callbacks run on the subscription's delivery thread, one at a time.

        Args:
            subscription: the subscription name; None opens a reader.
            subscription_type: consumers only: ``Exclusive`` (default), ``Shared``,
                ``Failover`` or ``Key_Shared``.
            start: readers: ``earliest``, ``latest`` (default) or a MessageId (exclusive).
                Consumers: ``earliest`` or ``latest``, where a NEW subscription starts
                (Pulsar's ``subscriptionInitialPosition``); an existing one resumes where it is.
            max_in_flight: the most delivered-but-unsettled messages (1 to 100,000).
            schema: a marshmallow Schema; ``Message.value`` is then the loaded object.
            schema_failures: a payload that does not load is reported on ``client.errors``
                and nacked (``"nack"``), or delivered with ``message.schema_error`` set
                (``"deliver"``), for ``process()``'s ``on_failure`` policy to settle.
            stall_timeout: seconds a consumer may hold all its credit with nothing settled
                before a :class:`~rxstargate.StalledStreamError` is reported on
                ``client.errors`` (once per stall); None turns the watchdog off.
            **options: Pulsar consumer or reader parameters in snake_case
                (``ack_timeout_millis``, ``dead_letter_topic``, ``receiver_queue_size``, ...).

        Raises:
            ConfigurationError: naming a bad argument, before any traffic (InvalidOptionError
                for a Pulsar option).

        Example:
            >>> topic.observe("billing", subscription_type="Shared").subscribe(  # doctest: +SKIP
            ...     rs.acknowledger())
        """
        spec = receiver_spec(
            self.name,
            subscription,
            subscription_type=subscription_type,
            start=start,
            max_in_flight=max_in_flight,
            schema=schema,
            stall_timeout=stall_timeout,
            schema_failures=schema_failures,
            options=options,
            topics=self._multi,
        )
        return observe(self._context, spec)

    def consume(
        self,
        subscription: str,
        handler: Handler,
        *,
        concurrency: int = 1,
        key_ordered: bool = False,
        timeout: float | None = None,
        retry: Retry | None = None,
        on_failure: FailurePolicy = "nack",
        subscription_type: SubscriptionType | str = SubscriptionType.SHARED,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        restart: Backoff | None = None,
        scheduler: abc.SchedulerBase | None = None,
        **observe_options: Any,
    ) -> Pipeline:
        """A supervised consumer that runs ``handler`` on every message: a :class:`Pipeline`.

        It is ``observe(subscription, ...).pipe(process(handler, ...))`` into the acknowledger,
        restarted with ``restart`` backoff after failures that retrying can fix. Call
        ``start()`` (or use ``with``), then ``stop()`` to drain and close. The handler and the
        failure options are those of :func:`rxstargate.operators.process` (``scheduler`` runs
        its retry delays and timeouts: a ``TestScheduler`` in tests); other options go to
        :meth:`observe`. Shared by default, so several pipelines can share the work.

        Example:
            >>> with topic.consume("billing", charge, concurrency=8) as pipeline:  # doctest: +SKIP
            ...     time.sleep(60)
            ...     print(pipeline.stats)
        """
        if not isinstance(subscription, str) or not subscription.strip():
            raise ConfigurationError("consume() needs a subscription name")
        source = functools.partial(
            self.observe,
            subscription,
            subscription_type=subscription_type,
            max_in_flight=max_in_flight,
            **observe_options,
        )
        source()  # checks every option now, before anything runs
        return Pipeline(
            source,
            handler,
            restart=restart,
            context=self._context,
            max_in_flight=max_in_flight,
            concurrency=concurrency,
            key_ordered=key_ordered,
            timeout=timeout,
            retry=retry,
            on_failure=on_failure,
            scheduler=scheduler,
        )

    def last_message_id(self) -> MessageId | None:
        """The id of the topic's last stored message (None when it is empty).

        Asks Pulsar's admin REST API (``lastMessageId``) on the same HTTP port as the
        WebSocket API, with the client's token; local Pulsar serves it too. Compare it with
        a message's id to know when a reader has caught up.

        Raises:
            AuthorizationError: when the token may not read the topic's stats.
            HandshakeError: another refusal; StargateConnectionError when unreachable.

        Example:
            >>> client.topic("orders").last_message_id()  # doctest: +SKIP
            MessageId('CAQQAw==')
        """
        return self._context.last_message_id(self.name)

    def peek(
        self,
        n: int = 20,
        *,
        start: str | MessageId = "earliest",
        idle: float = 1.0,
        timeout: float = 30.0,
    ) -> Messages:
        """Up to ``n`` messages from ``start``, read without leaving a subscription behind.

        A reader collects them; it stops at ``n``, when nothing arrived for ``idle`` seconds
        since it opened (the end of the topic), or after ``timeout`` seconds. The result shows
        as a table in notebooks and has ``to_pandas()``.

        Raises:
            StargateError: when the reader cannot be opened (StargateTimeoutError when it did
                not open within ``timeout``).

        Example:
            >>> client.topic("orders").peek(5)  # doctest: +SKIP
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigurationError(f"n must be a positive int, not {n!r}")
        idle, timeout = checked_seconds(idle, "idle"), checked_seconds(timeout, "timeout")
        spec = receiver_spec(
            self.name,
            None,
            subscription_type=None,
            start=start,
            max_in_flight=min(n, RECEIVER_QUEUE_MAX),
            schema=None,
            stall_timeout=None,
            schema_failures="nack",
            options={},
        )
        return Messages(peek(self._context, spec, n, idle, timeout))

    def live(
        self,
        subscription: str | None = None,
        *,
        rows: int = 20,
        interval: float = 1.0,
        **observe_options: Any,
    ) -> LiveView:
        """Tail the topic into a notebook view: the last ``rows`` messages and a rate plot.

        Reads with a reader (or acks with a consumer when given a subscription) in the
        background and redraws every ``interval`` seconds. ``view.stop()`` closes its socket;
        so do re-running the cell (a new view of the same topic replaces the old one) and
        interrupting the kernel. Other arguments are those of :meth:`observe`.

        Example:
            >>> view = client.topic("orders").live(rows=10)  # doctest: +SKIP
        """
        from rxstargate.notebook import LiveView

        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise ConfigurationError(f"rows must be a positive int, not {rows!r}")
        interval = checked_seconds(interval, "interval")
        stream = self.observe(subscription, **observe_options)
        acking = subscription is not None

        def subscribe(on_message: Callable[[Message[Any]], None]) -> Any:
            def on_next(message: Message[Any]) -> None:
                on_message(message)
                if acking:
                    message.ack()

            return stream.subscribe(on_next, lambda error: None)

        key = f"{self.name}" + (f" [{subscription}]" if subscription else "")
        return LiveView(key, subscribe, rows=rows, interval=interval)

    def messages(
        self, subscription: str | None = None, **observe_options: Any
    ) -> AsyncIterator[Message[Any]]:
        """The topic's messages for ``async for``: :meth:`observe` on an event loop.

        Takes the same arguments as :meth:`observe`. At most ``max_in_flight`` messages wait
        for the loop; an exception or cancellation in the loop closes the socket. After a
        ``break`` the async generator (and its socket) is closed once nothing refers to it:
        wrap it in ``contextlib.aclosing`` to close it at the ``break``.

        Example:
            >>> async with contextlib.aclosing(topic.messages("billing")) as messages:  # doctest: +SKIP
            ...     async for message in messages:
            ...         await handle(message)
            ...         message.ack()
        """  # noqa: E501
        from rxstargate.aio import iterate

        max_in_flight = observe_options.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT)
        return iterate(self.observe(subscription, **observe_options), buffer=max_in_flight)

    def __repr__(self) -> str:
        return f"Topic({str(self.name)!r})"


class Topics(Topic):
    """Several topics observed as one stream (``client.topics(...)``): consumers only.

    ``observe``, ``consume`` and ``messages`` work as on a :class:`Topic`, with one credit
    bound across all topics; each message's ``topic`` says where it came from when the server
    names it (local Pulsar does; Pulsar's own WebSocket service does not, and then it is the
    first topic listed, or the pattern).

    Attributes:
        name: the first topic listed, or the pattern as a topic name.
        names: the topics listed (empty for a pattern).
        pattern: the regular expression, or None.
    """

    def __init__(
        self,
        context: ClientContext,
        name: TopicName,
        multi: tuple[str, str],
        names: tuple[TopicName, ...] = (),
    ) -> None:
        super().__init__(context, name)
        self._multi = multi
        self.names = names
        self.pattern = multi[1] if multi[0] == "topicsPattern" else None

    def producer(self, **_: Any) -> Producer[Any]:
        """Not available: a producer writes to one topic (use ``client.topic(name)``)."""
        raise ConfigurationError("a producer writes to one topic: use client.topic(name)")

    def __repr__(self) -> str:
        if self.pattern is not None:
            return f"Topics(pattern={self.pattern!r})"
        return f"Topics({[str(n) for n in self.names]!r})"
