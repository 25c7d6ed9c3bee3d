"""Which sockets of a client are open, and how often each endpoint was opened.

Every socket of a client is opened through one call of its context; the watch wraps that call
on the client it is given (nothing else changes), so an App can say which of its streams are
connected (``/readyz``) and count reconnects, with no hook in the streams themselves.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from rxstargate.client import Client
from rxstargate.models import TopicName

__all__ = ["ConnectionWatch", "Endpoint", "endpoint_of"]

#: (kind, full topic name, subscription or None): what a socket is for.
Endpoint = tuple[str, str, str | None]


def endpoint_of(url: str) -> Endpoint | None:
    """The endpoint of a v2 producer, consumer or reader URL; None for another URL.

    Example:
        >>> endpoint_of("ws://h:8080/ws/v2/consumer/persistent/public/default/orders/billing?x=1")
        ('consumer', 'persistent://public/default/orders', 'billing')
    """
    path = urlsplit(url).path
    if "/ws/v2/" not in path:
        return None
    parts = [unquote(part) for part in path.split("/ws/v2/", 1)[1].split("/")]
    if len(parts) < 5 or parts[0] not in ("producer", "consumer", "reader"):
        return None
    kind, persistence, tenant, namespace, topic = parts[:5]
    subscription = parts[5] if kind == "consumer" and len(parts) > 5 else None
    return kind, f"{persistence}://{tenant}/{namespace}/{topic}", subscription


def endpoint(kind: str, topic: str | TopicName, subscription: str | None = None) -> Endpoint:
    """The endpoint of a stream of ``kind`` on ``topic``."""
    return kind, str(TopicName.parse(topic)), subscription


class ConnectionWatch:
    """Counts the sockets a client opens, by endpoint, and tells which are still open.

    :meth:`detach` puts the client back as it was.
    """

    def __init__(self, client: Client) -> None:
        self._context: Any = client._context  # the one place where sockets are opened
        self._open: Callable[..., Any] = self._context.open
        self._lock = threading.Lock()
        self._opened: Counter[Endpoint] = Counter()
        self._sockets: defaultdict[Endpoint, list[weakref.ref[Any]]] = defaultdict(list)
        # An instance attribute: only this client's sockets pass through the watch.
        self._context.open = self._opening  # type: ignore[method-assign]

    def _opening(self, url: str, *args: Any, **kwargs: Any) -> Any:
        connection = self._open(url, *args, **kwargs)
        where = endpoint_of(url)
        if where is not None:
            with self._lock:
                self._opened[where] += 1
                sockets = self._sockets[where]
                sockets[:] = [ref for ref in sockets if _is_open(ref)]
                sockets.append(weakref.ref(connection))
        return connection

    def opened(self, where: Endpoint) -> int:
        """How many sockets were opened for ``where`` so far."""
        with self._lock:
            return self._opened[where]

    def open_now(self, where: Endpoint) -> int:
        """How many sockets for ``where`` are open now."""
        with self._lock:
            return sum(1 for ref in self._sockets.get(where, ()) if _is_open(ref))

    def detach(self) -> None:
        """Stop watching: the client opens sockets as before. Idempotent."""
        if self._context.__dict__.get("open") == self._opening:
            del self._context.open


def _is_open(ref: weakref.ref[Any]) -> bool:
    connection = ref()
    return connection is not None and not connection.closed
