"""The gateway's broker clients: one shared by every socket, and one per Key_Shared subscription.

pulsar-lite serves each broker connection's commands one after another, and a Key_Shared
subscription first joined by a client with the default (ordered) policy can stall for good once
a consumer leaves holding unacked messages: the broker then spins on it and never answers
another command of the connection that touched it (an ack, a close). Had every socket shared
one broker connection, as Pulsar's own WebSocket proxy does, every producer and consumer of the
gateway would wait with it. So each Key_Shared subscription gets a broker client (a connection)
of its own, shared by the gateway's sockets on that subscription (pulsar-lite keys a
subscription's consumers by consumer id alone, and ids count from 0 in each client, so two
clients of the gateway on one subscription would collide), and closed once the last of them is
gone.

Closing a client may wait for the broker (up to its operation timeout): that happens on a
thread of its own, never on the path of other sockets' traffic.
"""

from __future__ import annotations

import threading
from typing import Any

import pulsar

from rxstargate.local._gateway._offloop import in_own_thread

OPERATION_TIMEOUT_SECONDS = 15


class BrokerClients:
    """The main broker client, and the clients of Key_Shared subscriptions, by subscription name.

    ``lease`` and ``release`` are called on the event loop only.

    Args:
        broker_url: ``pulsar://host:port`` of the broker.
        log_path: where the clients log (warnings and worse); None keeps them quiet.
    """

    def __init__(self, broker_url: str, log_path: str | None = None) -> None:
        self._broker_url = broker_url
        self._log_path = log_path
        self._main: Any = None
        self._leased: dict[str, tuple[Any, int]] = {}
        self._closing: list[threading.Event] = []

    def _new_client(self) -> Any:
        if self._log_path:
            logger = pulsar.FileLogger(pulsar.LoggerLevel.Warn, self._log_path)
        else:
            logger = pulsar.FileLogger(pulsar.LoggerLevel.Error, "/dev/null")
        return pulsar.Client(
            self._broker_url, operation_timeout_seconds=OPERATION_TIMEOUT_SECONDS, logger=logger
        )

    @property
    def main(self) -> Any:
        """The client every socket but Key_Shared consumers uses (created on first use)."""
        if self._main is None:
            self._main = self._new_client()
        return self._main

    def lease(self, subscription: str) -> Any:
        """The client of Key_Shared ``subscription``; each lease needs a :meth:`release`."""
        client, count = self._leased.get(subscription, (None, 0))
        if client is None:
            client = self._new_client()
        self._leased[subscription] = (client, count + 1)
        return client

    def release(self, subscription: str) -> None:
        """Give a lease back; the last one closes the subscription's client (in a thread)."""
        client, count = self._leased.get(subscription, (None, 0))
        if client is None:
            return
        if count > 1:
            self._leased[subscription] = (client, count - 1)
            return
        del self._leased[subscription]
        self._closing = [event for event in self._closing if not event.is_set()]
        self._closing.append(in_own_thread(client.close, "close-client"))

    @property
    def leased(self) -> int:
        """How many Key_Shared subscriptions have a client of their own now."""
        return len(self._leased)

    def close(self) -> list[threading.Event]:
        """Start closing every client, each on its own thread; each event is set once closed.

        A stalled broker can keep a close waiting up to the operation timeout.
        """
        clients = [client for client, _ in self._leased.values()]
        self._leased.clear()
        if self._main is not None:
            clients.append(self._main)
            self._main = None
        closing = self._closing + [in_own_thread(c.close, "close-client") for c in clients]
        self._closing = []
        return closing
