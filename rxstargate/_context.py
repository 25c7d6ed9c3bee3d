"""What every socket of one client shares: URL, transport settings, backoff, keepalive, errors."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from rxstargate._fanout import Fanout
from rxstargate._reconnect import Backoff
from rxstargate._transport import Connection, Keepalive, TransportConfig
from rxstargate.exceptions import ClosedError, StargateError
from rxstargate.models import TopicName

__all__ = ["ClientContext"]

log = logging.getLogger("rxstargate")


@dataclass(eq=False)
class ClientContext:
    """Shared state of a client; sources and sinks register a close callback here."""

    base_url: str
    transport: TransportConfig
    backoff: Backoff
    keepalive: Keepalive
    errors: Fanout[StargateError] = field(default_factory=Fanout)
    error_count: int = 0
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closers: dict[int, Callable[[], None]] = field(default_factory=dict)
    _next: int = 0

    def url(self, kind: str, topic: TopicName, suffix: str | None, query: dict[str, str]) -> str:
        """The endpoint URL of a producer, consumer or reader on ``topic``."""
        path = "/".join(
            quote(part, safe="")
            for part in (topic.persistence.value, topic.tenant, topic.namespace, topic.topic)
        )
        url = f"{self.base_url}/ws/v2/{kind}/{path}"
        if suffix is not None:
            url += "/" + quote(suffix, safe="")
        if query:
            url += "?" + urlencode(query)
        return url

    def open(self, url: str) -> Connection:
        """Open a socket and keep it alive with pings.

        Raises:
            ClosedError: when the client is closed.
        """
        if self.closed:
            raise ClosedError("the client is closed")
        connection = Connection.open(url, self.transport)
        self.keepalive.watch(connection)
        return connection

    def register(self, close: Callable[[], None]) -> int:
        """Remember ``close`` so that closing the client calls it; returns a handle."""
        with self._lock:
            if self.closed:
                raise ClosedError("the client is closed")
            self._next += 1
            self._closers[self._next] = close
            return self._next

    def unregister(self, handle: int) -> None:
        """Forget a close callback (its owner closed by itself)."""
        with self._lock:
            self._closers.pop(handle, None)

    def report(self, error: StargateError) -> None:
        """A non-fatal problem (malformed frame, undecodable payload): log, count, publish."""
        with self._lock:
            self.error_count += 1
        log.warning("%s", error)
        self.errors.on_next(error)

    def close(self) -> None:
        """Close every registered socket owner, then the keepalive thread."""
        with self._lock:
            self.closed = True
            closers = list(self._closers.values())
            self._closers.clear()
        for close in closers:
            try:
                close()
            except Exception:
                log.exception("closing a socket owner failed")
        self.keepalive.stop()
        self.errors.end()
