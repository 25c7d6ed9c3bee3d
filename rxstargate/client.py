"""The client and its topics: the entry points of rxstargate.

A :class:`Client` holds the WebSocket URL, credentials and TLS settings and supervises every
socket opened through it: producers, consumers and readers reconnect after a drop with
capped exponential backoff, and :meth:`Client.close` ends every socket and thread.

Threads: one I/O thread per client (``rxstargate-io``) reads and writes every socket of the
client; a socket is opened (and reopened after a drop) by a thread of its stream that lives only
meanwhile (``rxstargate-producer-<topic>``, ``rxstargate-consumer-<topic>``,
``rxstargate-reader-<topic>``). A subscription's observer runs on its
``rxstargate-delivery-<topic>`` thread, a producer's ``acks`` observers on its
``rxstargate-acks-<topic>`` thread; each client has one ``rxstargate-keepalive`` thread that
queues pings. Sends, acks, nacks and permits may come from any thread: they only queue a frame.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from reactivex import Observable

from rxstargate._config import TlsOptions, TransportConfig, checked_seconds, redact_url
from rxstargate._context import ClientContext
from rxstargate._flow import MAX_IN_FLIGHT
from rxstargate._keepalive import Keepalive
from rxstargate._reconnect import Backoff
from rxstargate._seam import Connector
from rxstargate._topic import Topic, Topics
from rxstargate.exceptions import ConfigurationError, StargateError
from rxstargate.models import TopicName
from rxstargate.streams import StreamHandle

__all__ = ["MAX_IN_FLIGHT", "Client", "Topic", "Topics"]


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
        connect: opens each socket: ``connect(url, config, name)`` returns an open
            :class:`~rxstargate.Transport` (see :data:`~rxstargate.Connector`). The seam for
            tests and alternative transports: by default the client's I/O loop (websocket-client
            for the handshake, then one thread for every socket);
            ``rxstargate.testing.MemoryPulsar().connect`` serves an in-memory Pulsar. A
            connector with a ``last_message_id(base_url, topic, config)`` method also answers
            the admin API's ``lastMessageId`` (readers from ``latest``, ``last_message_id()``).

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
        connect: Connector | None = None,
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
        if connect is not None and not callable(connect):
            raise ConfigurationError(f"connect must be a callable or None, not {connect!r:.80}")
        config = TransportConfig(
            token=token,
            tls=tls,
            connect_timeout=checked_seconds(connect_timeout, "connect_timeout"),
            ping_interval=checked_seconds(ping_interval, "ping_interval"),
            ping_timeout=checked_seconds(ping_timeout, "ping_timeout"),
            write_timeout=checked_seconds(write_timeout, "write_timeout"),
            close_timeout=checked_seconds(close_timeout, "close_timeout", zero=True),
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
        if connect is not None:
            self._context.connect = connect

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

        Observers run on the thread that met the problem (often the client's I/O thread: keep
        them short); it completes on close.
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
