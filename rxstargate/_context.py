"""What every socket of one client shares: URL, connector, transport settings, backoff, errors.

It also keeps the registry of live streams (``client.streams``) that ``close()`` ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from rxstargate import _handshakes
from rxstargate._config import TransportConfig
from rxstargate._fanout import Fanout
from rxstargate._ioloop import IOLoop
from rxstargate._keepalive import Keepalive
from rxstargate._reconnect import Backoff
from rxstargate._seam import AdminConnector, Connector, Transport
from rxstargate.exceptions import ClosedError, StargateError
from rxstargate.models import MessageId, TopicName
from rxstargate.streams import StreamHandle

__all__ = ["ClientContext"]

log = logging.getLogger("rxstargate")


@dataclass(eq=False)
class ClientContext:
    """Shared state of a client; sources and sinks register a close callback here.

    ``connect`` opens every socket: by default the client's own :class:`IOLoop`, whose one
    thread reads and writes all of them.
    """

    base_url: str
    transport: TransportConfig
    backoff: Backoff
    keepalive: Keepalive
    connect: Connector = field(default_factory=IOLoop)
    errors: Fanout[StargateError] = field(default_factory=Fanout)
    error_count: int = 0
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _streams: dict[int, StreamHandle] = field(default_factory=dict)
    _ending: dict[int, StreamHandle] = field(default_factory=dict)  # closing on their own
    _hooks: dict[int, Callable[[float], None]] = field(default_factory=dict)  # on_close()
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

    def url_v3(self, subscription: str, query: dict[str, str]) -> str:
        """The v3 multi-topic consumer URL (``topics`` or ``topicsPattern`` in ``query``)."""
        return f"{self.base_url}/ws/v3/consumer/{quote(subscription, safe='')}?{urlencode(query)}"

    def open(self, url: str, name: str = "socket") -> Transport:
        """Open a socket with the client's connector and keep it alive with pings.

        Raises:
            ClosedError: when the client is closed.
        """
        if self.closed:
            raise ClosedError("the client is closed")
        connection = self.connect(url, self.transport, name)
        self.keepalive.watch(connection)
        return connection

    def last_message_id(
        self, topic: TopicName, config: TransportConfig | None = None
    ) -> MessageId | None:
        """The topic's last message id: from the connector if it knows, else the admin API.

        Raises:
            StargateError: as :func:`rxstargate._admin.last_message_id`.
        """
        settings = config or self.transport
        if isinstance(self.connect, AdminConnector):
            return self.connect.last_message_id(self.base_url, topic, settings)
        from rxstargate._admin import last_message_id

        return last_message_id(self.base_url, topic, settings)

    def register(self, handle: StreamHandle) -> int:
        """Remember a live stream so that closing the client ends it; returns a key."""
        return self._keep(self._streams, handle)

    def _keep(self, table: dict[int, Any], item: Any) -> int:
        with self._lock:
            if self.closed:
                raise ClosedError("the client is closed")
            self._next += 1
            table[self._next] = item
            return self._next

    def unregister(self, key: int) -> None:
        """A stream is ending: no longer listed, but ``close()`` still waits for its threads."""
        with self._lock:
            handle = self._streams.pop(key, None)
            if handle is not None:
                self._ending[key] = handle

    def finished(self, key: int) -> None:
        """A stream's threads and socket are done: forget it."""
        with self._lock:
            self._streams.pop(key, None)
            self._ending.pop(key, None)

    def holds(self, topic: TopicName, subscription: str, other_than: int) -> bool:
        """Whether another consumer of this client, live or ending, is on the subscription."""
        with self._lock:
            handles = [
                handle
                for key, handle in [*self._streams.items(), *self._ending.items()]
                if key != other_than
            ]
        return any(h.topic == topic and h.subscription == subscription for h in handles)

    def on_close(self, hook: Callable[[float], None]) -> int:
        """Have ``close()`` call ``hook(deadline)`` (for work that is not a stream); a key.

        Raises:
            ClosedError: when the client is closed already.
        """
        return self._keep(self._hooks, hook)

    def remove_on_close(self, key: int) -> None:
        """Forget a hook given to :meth:`on_close`."""
        with self._lock:
            self._hooks.pop(key, None)

    @property
    def streams(self) -> list[StreamHandle]:
        """The live streams, oldest first."""
        with self._lock:
            return list(self._streams.values())

    def report(self, error: StargateError, *, log_it: bool = True) -> None:
        """A non-fatal problem (malformed frame, undecodable payload): log, count, publish.

        ``log_it=False`` for the many consequences of one failure that was logged already.
        """
        with self._lock:
            self.error_count += 1
        if log_it:
            log.warning("%s", error)
        self.errors.on_next(error)

    def close(self) -> None:
        """End every live stream (completing it), then stop the keepalive thread.

        Every stream is told first and then waited for with one shared deadline, so the
        whole close takes at most about ``transport.close_timeout`` seconds.
        """
        with self._lock:
            self.closed = True
            streams = list(self._streams.values())
            ending = list(self._ending.values())
            hooks = list(self._hooks.values())
            self._streams.clear()
            self._ending.clear()
            self._hooks.clear()
        for stream in streams:
            try:
                stream._begin_close(True)
            except Exception:
                log.exception("closing %r failed", stream)
        # Told to stop first, the streams take the cut handshakes' failures for the stop they are.
        _handshakes.cut_short(owner=self.transport)
        deadline = time.monotonic() + self.transport.close_timeout
        for hook in hooks:
            try:
                hook(deadline)
            except Exception:
                log.exception("a close hook failed")
        for stream in streams + ending:
            try:
                stream._wait_closed(deadline)
            except Exception:
                log.exception("closing %r failed", stream)
        if isinstance(self.connect, IOLoop):
            self.connect.wait_idle(max(deadline, time.monotonic() + 1.0))
        self.keepalive.stop()
        self.errors.end()
