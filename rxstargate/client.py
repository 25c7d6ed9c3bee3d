"""The client and its topics: the entry points of rxstargate.

A :class:`Client` holds the WebSocket URL, credentials and TLS settings and supervises every
socket opened through it: producers, consumers and readers reconnect after a drop with
capped exponential backoff, and :meth:`Client.close` ends every socket and thread.

Threads: each socket has a receive thread that only reads (``rxstargate-producer-<topic>``,
``rxstargate-consumer-<topic>``, ``rxstargate-reader-<topic>``) and a writer thread
(``rxstargate-writer-<topic>``) that alone writes to it; a subscription's observer runs on its
``rxstargate-delivery-<topic>`` thread, a producer's ``acks`` observers on its
``rxstargate-acks-<topic>`` thread; each client has one ``rxstargate-keepalive`` thread that
queues pings. Sends, acks, nacks and permits may come from any thread: they only queue a frame.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from marshmallow import Schema
from reactivex import Observable

from rxstargate._config import TlsOptions, TransportConfig, checked_seconds, redact_url
from rxstargate._context import ClientContext
from rxstargate._keepalive import Keepalive
from rxstargate._producer import Producer
from rxstargate._receiver import ReceiverSpec, observe
from rxstargate._reconnect import Backoff
from rxstargate.display import Messages
from rxstargate.exceptions import ConfigurationError, StargateError, StargateTimeoutError
from rxstargate.models import Message, MessageId, TopicName
from rxstargate.operators._failure import FailurePolicy
from rxstargate.operators._process import Handler
from rxstargate.operators._retry import Retry
from rxstargate.options import (
    InitialPosition,
    SubscriptionType,
    consumer_query,
    producer_query,
    reader_query,
)
from rxstargate.pipeline import Pipeline
from rxstargate.streams import Stream, StreamHandle

if TYPE_CHECKING:
    from rxstargate.live import LiveView

__all__ = ["MAX_IN_FLIGHT", "Client", "Topic", "Topics"]

#: The largest ``max_in_flight`` a producer or subscription accepts.
MAX_IN_FLIGHT = 100_000


def _seconds(value: float | timedelta, name: str, *, zero: bool = False) -> float:
    return checked_seconds(value, name, zero=zero)


def _max_in_flight(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_IN_FLIGHT:
        raise ConfigurationError(
            f"max_in_flight must be an int from 1 to {MAX_IN_FLIGHT}, not {value!r}"
        )
    return value


def _base_url(url: Any) -> str:
    if not isinstance(url, str) or not url.lower().startswith(("ws://", "wss://")):
        raise ConfigurationError(f"url must start with ws:// or wss://, not {url!r}")
    scheme, rest = url.split("://", 1)
    url = f"{scheme.lower()}://{rest}"  # schemes are case-insensitive
    if not url.isascii() or not url.isprintable() or " " in url:
        raise ConfigurationError("url has spaces or control characters (or is not ASCII)")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a bad port, like a bad IPv6 literal, fails only when read
    except ValueError as exc:
        raise ConfigurationError(f"url cannot be parsed: {exc}") from None
    if not parts.hostname:
        raise ConfigurationError(f"url has no host: {redact_url(url)!r}")

    if parts.query or parts.fragment:
        raise ConfigurationError(
            "url must not carry a query string or fragment (pass the token as token=...):"
            f" {redact_url(url)!r}"
        )
    path = parts.path.rstrip("/")
    if "/ws/" in path + "/":
        raise ConfigurationError(
            "url must be the service's base URL (ws://host:port, or a proxy prefix such as"
            f" ws://host/pulsar), without /ws/...: {redact_url(url)!r}"
        )
    return f"{parts.scheme}://{parts.netloc}{path}"


class Client:
    """A connection point to Pulsar's WebSocket API.

    Args:
        url: ``ws://host:port`` or ``wss://host:port`` of the WebSocket service.
        token: a JWT sent as ``Authorization: Bearer``; never logged or shown in reprs.
        tls: TLS settings for ``wss://`` (CA file, client certificate, hostname check).
        connect_timeout: seconds to open a socket and finish its handshake.
        ping_interval: seconds of silence before a ping (servers drop sessions idle 5 min).
        ping_timeout: seconds to wait for the pong before the socket counts as dropped.
        write_timeout: seconds a socket may accept no bytes before it counts as dropped
            (a server that stopped reading).
        close_timeout: the most ``close()`` (and disposing a subscription) waits for queued
            frames to be written and the server to answer, in seconds.
        max_frame_bytes: the largest frame accepted from the server (8 MiB: Pulsar's 5 MB
            message limit in base64 and JSON); a larger one ends the stream with an error.
        max_send_bytes: the largest frame sent; Pulsar's WebSocket service refuses frames
            over 1 MiB by default, so a larger message fails alone, before it is sent.
        reconnect: the backoff policy for dropped connections.

    Raises:
        ConfigurationError: when the URL is not a ws:// or wss:// base URL, a timeout is not
            positive or over 30 days, a size is too small, the token is not printable ASCII,
            or a TLS file cannot be loaded.

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
        write_timeout: float | timedelta = 10.0,
        close_timeout: float | timedelta = 5.0,
        max_frame_bytes: int = 8 * 1024 * 1024,
        max_send_bytes: int = 1024 * 1024,
        reconnect: Backoff | None = None,
    ) -> None:
        base = _base_url(url)
        for name, size in (
            ("max_frame_bytes", max_frame_bytes),
            ("max_send_bytes", max_send_bytes),
        ):
            if isinstance(size, bool) or not isinstance(size, int) or size < 1024:
                raise ConfigurationError(f"{name} must be an int of at least 1024, not {size!r}")
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise ConfigurationError("token must be a non-empty str or None")
        if token is not None and not (token.isascii() and token.isprintable()):
            raise ConfigurationError(
                "token must be printable ASCII (a line break from a token file?): it travels in"
                " an HTTP header"
            )
        if tls is not None:
            if not isinstance(tls, TlsOptions):
                raise ConfigurationError(f"tls must be rs.TlsOptions or None, not {tls!r}")
            tls.check()
        if reconnect is not None and not isinstance(reconnect, Backoff):
            raise ConfigurationError(f"reconnect must be rs.Backoff or None, not {reconnect!r}")
        config = TransportConfig(
            token=token,
            tls=tls,
            connect_timeout=_seconds(connect_timeout, "connect_timeout"),
            ping_interval=_seconds(ping_interval, "ping_interval"),
            ping_timeout=_seconds(ping_timeout, "ping_timeout"),
            write_timeout=_seconds(write_timeout, "write_timeout"),
            close_timeout=_seconds(close_timeout, "close_timeout", zero=True),
            max_receive_bytes=max_frame_bytes,
            max_send_bytes=max_send_bytes,
        )
        self.url = base
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

    def topics(self, names: Iterable[str | TopicName] | re.Pattern[str] | str) -> Topics:
        """Several topics as one stream: a list of names, or a regular expression.

        Observed through Pulsar's v3 multi-topic consumer endpoint; one credit bound
        (``max_in_flight``) covers them all. A pattern without ``://`` is taken in
        ``persistent://public/default/``; it selects topics of one namespace.

        Raises:
            InvalidTopicNameError: for a name (or the pattern's namespace) that is wrong.
            ConfigurationError: for an empty list.

        Example:
            >>> client.topics(["orders", "refunds"]).observe("audit")  # doctest: +SKIP
            >>> client.topics(re.compile("orders-.*")).observe("audit")  # doctest: +SKIP
        """
        if isinstance(names, re.Pattern | str):
            pattern = names.pattern if isinstance(names, re.Pattern) else names
            if "://" not in pattern:
                pattern = f"persistent://public/default/{pattern}"
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigurationError(f"bad topics pattern {pattern!r}: {exc}") from None
            return Topics(self._context, TopicName.parse(pattern), ("topicsPattern", pattern))
        if not isinstance(names, Iterable):
            raise ConfigurationError(
                f"topics() takes a list of names or a pattern, not {type(names).__name__}"
            )
        parsed = [TopicName.parse(name) for name in names]
        if not parsed:
            raise ConfigurationError("topics() needs at least one topic")
        joined = ",".join(str(name) for name in parsed)
        return Topics(self._context, parsed[0], ("topics", joined), tuple(parsed))

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

    @property
    def streams(self) -> list[StreamHandle]:
        """The live producers, consumers and readers of this client, oldest first.

        Each can be stopped on its own: handy in a notebook where a cell was interrupted.

        Example:
            >>> [s.kind for s in client.streams]  # doctest: +SKIP
            ['consumer', 'producer']
        """
        return self._context.streams

    def close(self) -> None:
        """Close every producer, consumer and reader socket and stop every thread. Idempotent.

        Every subscription completes (``on_completed``), so ``run()``, ``await`` and
        ``to_future()`` return; producers report their unacknowledged messages as failed
        acks and complete ``acks``. Queued acks are written first. Returns within about
        ``close_timeout`` seconds whatever the server does (a callback still running in user
        code finishes on its own thread).

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

    _multi: tuple[str, str] | None = None

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
        _max_in_flight(max_in_flight)
        wait = _seconds(timeout, "timeout")
        query = producer_query(options)
        return Producer(
            self._context,
            self.name,
            query,
            schema=schema,
            max_in_flight=max_in_flight,
            timeout=wait,
        )

    def observe(
        self,
        subscription: str | None = None,
        *,
        subscription_type: SubscriptionType | str | None = None,
        start: str | MessageId | None = None,
        max_in_flight: int = 1000,
        schema: Schema | None = None,
        stall_timeout: float | timedelta | None = 30.0,
        schema_failures: str = "nack",
        **options: Any,
    ) -> Stream[Message[Any]]:
        """The topic's messages as a cold Observable: a consumer, or a reader without subscription.

        Each subscription opens its own socket; disposing it closes the socket. At most
        ``max_in_flight`` messages are delivered and not yet settled. A consumer's message is
        settled by ``ack()`` or ``nack()``: a pipeline that stops settling stops receiving.
        A reader's message is settled when the observer's ``on_next`` returns (or by
        ``ack()``/``nack()`` before that), so ``observe(start="earliest").subscribe(print)``
        reads a topic of any length; readers cannot ask for redelivery, so a reader
        message's ``nack()`` only returns its credit. Callbacks run on the subscription's
        delivery thread, one at a time.

        Marble::

            broker:   --a--b--c--d--...
            observe:  --a--b--c--d--...   (until disposed; client.close() completes it)

        Args:
            subscription: the subscription name; None opens a reader.
            subscription_type: consumers only: ``Exclusive`` (default), ``Shared``,
                ``Failover`` or ``Key_Shared``.
            start: readers: ``earliest``, ``latest`` (default) or a MessageId (exclusive).
                Consumers: ``earliest`` or ``latest``, where a NEW subscription starts
                (Pulsar's ``subscriptionInitialPosition``); an existing one resumes where it is.
            max_in_flight: the most delivered-but-unsettled messages (1 to 100,000).
            schema: a marshmallow Schema; ``Message.value`` is then the loaded object, and a
                payload that does not load is reported on ``client.errors`` and nacked.
            schema_failures: what the stream does with a payload that does not load:
                ``"nack"`` it (and report it on ``client.errors``), or ``"deliver"`` it with
                ``message.schema_error`` set, for ``process()`` to settle by its own
                ``on_failure`` policy (a dead-letter topic, say).
            stall_timeout: seconds a consumer may hold all its credit with nothing settled
                before a :class:`~rxstargate.StalledStreamError` is reported on
                ``client.errors`` (once per stall); None turns the watchdog off.
            **options: Pulsar consumer or reader parameters in snake_case
                (``ack_timeout_millis``, ``negative_ack_redelivery_delay``,
                ``dead_letter_topic``, ``max_redeliver_count``, ``receiver_queue_size``, ...).

        Raises:
            ConfigurationError: naming a bad argument, such as ``subscription_type`` for a
                reader or a MessageId start for a consumer (no traffic yet).
            InvalidOptionError: naming an unknown option or a bad value (no traffic yet).

        Example:
            >>> topic.observe("billing", subscription_type="Shared").subscribe(  # doctest: +SKIP
            ...     rs.acknowledger())
        """
        _max_in_flight(max_in_flight)
        stall = None if stall_timeout is None else _seconds(stall_timeout, "stall_timeout")
        if schema_failures not in ("nack", "deliver"):
            raise ConfigurationError(
                f"schema_failures must be 'nack' or 'deliver', not {schema_failures!r}"
            )
        deliver = schema_failures == "deliver"
        if subscription is None:
            spec = self._reader_spec(subscription_type, start, max_in_flight, schema, options)
            return observe(self._context, replace(spec, deliver_schema_failures=deliver))
        if not isinstance(subscription, str) or not subscription.strip():
            raise ConfigurationError("subscription must be a non-empty str or None (a reader)")
        try:
            sub_type = SubscriptionType(subscription_type or SubscriptionType.EXCLUSIVE)
        except ValueError:
            raise ConfigurationError(
                f"subscription_type must be one of {[t.value for t in SubscriptionType]},"
                f" not {subscription_type!r}"
            ) from None
        if start is not None:
            if isinstance(start, MessageId) or start not in ("earliest", "latest"):
                raise ConfigurationError(
                    "a consumer's start must be 'earliest' or 'latest' (where a new"
                    " subscription begins); Pulsar's WebSocket consumers cannot start at a"
                    f" message id: use a reader (no subscription) for that, not {start!r}"
                )
            position = InitialPosition(start.capitalize())
            given = options.get("subscription_initial_position")
            if given is not None and InitialPosition(given) is not position:
                raise ConfigurationError(
                    f"start={start!r} contradicts subscription_initial_position={given!r}"
                )
            options["subscription_initial_position"] = position
        options.setdefault("receiver_queue_size", min(max_in_flight, 1000))
        query = consumer_query(options)
        query["subscriptionType"] = sub_type.value
        query["pullMode"] = "true"
        spec = ReceiverSpec(
            self.name, subscription, query, max_in_flight, schema, None, stall, self._multi, deliver
        )
        return observe(self._context, spec)

    def _reader_spec(
        self,
        subscription_type: SubscriptionType | str | None,
        start: str | MessageId | None,
        max_in_flight: int,
        schema: Schema | None,
        options: dict[str, Any],
    ) -> ReceiverSpec:
        if self._multi is not None:
            raise ConfigurationError(
                "several topics need a subscription: Pulsar's multi-topic endpoint has"
                " consumers only (observe('name', ...))"
            )
        if subscription_type is not None:
            raise ConfigurationError(
                "subscription_type needs a subscription: observe(subscription=...) opens a"
                " consumer; without one it is a reader"
            )
        start = "latest" if start is None else start
        if start not in ("earliest", "latest") and not isinstance(start, MessageId):
            raise ConfigurationError(
                f"start must be 'earliest', 'latest' or a MessageId, not {start!r}"
            )
        # The server's window is the reader's bound: never more than max_in_flight.
        given = options.get("receiver_queue_size", 1000)
        if isinstance(given, int) and not isinstance(given, bool) and given > 0:
            options["receiver_queue_size"] = min(max_in_flight, 1000, given)
        query = reader_query(options)
        window = max(1, int(query["receiverQueueSize"]))
        return ReceiverSpec(self.name, None, query, window, schema, start=str(start))

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
        max_in_flight: int = 1000,
        restart: Backoff | None = None,
        **observe_options: Any,
    ) -> Pipeline:
        """A supervised consumer that runs ``handler`` on every message: a :class:`Pipeline`.

        It is ``observe(subscription, ...).pipe(process(handler, ...))`` into the acknowledger,
        restarted with ``restart`` backoff after failures that retrying can fix. Call
        ``start()`` (or use ``with``), then ``stop()`` to drain and close. The handler and the
        failure options are those of :func:`rxstargate.operators.process`; other options go to
        :meth:`observe`. Shared by default, so several pipelines can share the work.

        Example:
            >>> with topic.consume("billing", charge, concurrency=8) as pipeline:  # doctest: +SKIP
            ...     time.sleep(60)
            ...     print(pipeline.stats)
        """
        if not isinstance(subscription, str) or not subscription.strip():
            raise ConfigurationError("consume() needs a subscription name")
        self.observe(  # validates every option now, before anything runs
            subscription,
            subscription_type=subscription_type,
            max_in_flight=max_in_flight,
            **observe_options,
        )
        return Pipeline(
            lambda: self.observe(
                subscription,
                subscription_type=subscription_type,
                max_in_flight=max_in_flight,
                **observe_options,
            ),
            handler,
            restart=restart,
            context=self._context,
            max_in_flight=max_in_flight,
            concurrency=concurrency,
            key_ordered=key_ordered,
            timeout=timeout,
            retry=retry,
            on_failure=on_failure,
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
        from rxstargate._admin import last_message_id

        return last_message_id(self._context.base_url, self.name, self._context.transport)

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
        idle = _seconds(idle, "idle")
        timeout = _seconds(timeout, "timeout")
        got: list[Message[Any]] = []
        failed: list[Exception] = []
        ended = threading.Event()

        def on_next(message: Message[Any]) -> None:
            if len(got) < n:
                got.append(message)
            if len(got) >= n:
                ended.set()

        def on_error(error: Exception) -> None:
            failed.append(error)
            ended.set()

        opened = threading.Event()
        spec = self._reader_spec(None, start, min(n, 1000), None, {})
        stream = observe(self._context, replace(spec, on_open=opened.set))
        handle = stream.subscribe(on_next, on_error, ended.set)
        try:
            deadline = time.monotonic() + timeout
            seen, quiet_since = 0, time.monotonic()
            while not ended.wait(min(0.05, idle)):
                now = time.monotonic()
                if len(got) != seen or not opened.is_set():
                    seen, quiet_since = len(got), now  # silence counts once the reader is open
                if now - quiet_since >= idle or now >= deadline:
                    break
        finally:
            handle.dispose()
        if failed:
            raise failed[0]
        if not opened.is_set():
            raise StargateTimeoutError(f"the reader on {self.name} did not open in {timeout:g} s")
        return Messages(got[:n])

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
        from rxstargate.live import LiveView

        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise ConfigurationError(f"rows must be a positive int, not {rows!r}")
        interval = _seconds(interval, "interval")
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

        max_in_flight = observe_options.get("max_in_flight", 1000)
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
