"""MemoryPulsar: a Pulsar WebSocket service in memory, for testing pipelines without a broker."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from reactivex import abc
from reactivex.scheduler import TimeoutScheduler

from rxstargate._pulsar_time import to_epoch_millis
from rxstargate._reconnect import Backoff
from rxstargate.client import Client
from rxstargate.exceptions import ConfigurationError
from rxstargate.models import Message, MessageId, TopicName
from rxstargate.testing._broker import Broker
from rxstargate.testing._connector import (
    MemoryConnector,
    NoSubscriptionError,
    SocketInfo,
    wait_until,
)
from rxstargate.testing._faults import DEFAULT_REASONS, DROP_KINDS
from rxstargate.testing._topics import Subscription
from rxstargate.testing._wire import Publication

__all__ = ["MemoryPulsar"]

#: How clients of ``MemoryPulsar.client()`` reconnect unless told otherwise: at once, nearly.
FAST_RECONNECT = Backoff(initial=0.001, factor=2.0, cap=0.05, jitter=0.0, give_up_after=10.0)


class MemoryPulsar:
    """Pulsar's WebSocket API served in memory: topics, subscriptions, readers and faults.

    Clients reach it through their connector (``pulsar.client()`` makes one), with Pulsar's
    frames, query parameters and refusals, and no socket or thread of its own. It keeps local
    Pulsar's semantics: consumers' pull-mode permits and push windows, acks, nacks redelivered
    after ``negative_ack_redelivery_delay`` with a raised ``redelivery_count``, ack timeouts,
    dead-letter policies (``max_redeliver_count``, ``dead_letter_topic``, by default
    ``<topic>-<subscription>-DLQ``), the four subscription types (a second Exclusive consumer is
    refused with 409), readers from earliest, latest or a message id, and what a consumer held
    delivered again when its socket goes away.

    Every delay (nack delay, ack timeout) runs on ``scheduler``: give it a reactivex
    ``TestScheduler`` and the same one to ``process``, ``batch`` or ``topic.consume``, and a
    test moves virtual time instead of sleeping (:meth:`wait_until` moves it when all is quiet).

    Args:
        scheduler: where delays run and what time it is (publish times too); a real-time
            one by default.
        token: when set, every handshake must carry it, as a secured Pulsar would.

    Example:
        >>> with MemoryPulsar() as pulsar:
        ...     client = pulsar.client()
        ...     ack = client.topic("orders").producer().send(b"x")
        ...     [m.payload for m in pulsar.stored("orders")]
        [b'x']
    """

    #: The URL its clients are given (no host of that name exists: nothing leaves the process).
    url = "ws://memory-pulsar.invalid"

    def __init__(
        self, *, scheduler: abc.SchedulerBase | None = None, token: str | None = None
    ) -> None:
        if scheduler is not None and not isinstance(scheduler, abc.SchedulerBase):
            raise ConfigurationError(
                f"scheduler must be an Rx scheduler or None, not {scheduler!r}"
            )
        if token is not None and (not isinstance(token, str) or not token):
            raise ConfigurationError("token must be a non-empty str or None")
        self.scheduler: abc.SchedulerBase = scheduler or TimeoutScheduler.singleton()
        self._broker = Broker(self.scheduler, token)
        self._clients: list[Client] = []
        #: The connector to give ``rs.Client(url, connect=...)`` for a client of your own.
        self.connect = MemoryConnector(self._broker)

    def client(self, **client_kwargs: Any) -> Client:
        """An ordinary :class:`~rxstargate.Client` wired to this MemoryPulsar.

        Takes :class:`~rxstargate.Client`'s keyword arguments; ``reconnect`` defaults to a
        backoff of a millisecond (doubling to 50 ms, giving up after 10 s), so a client
        reconnects at once after :meth:`cut`. Closing the MemoryPulsar closes its clients.

        Raises:
            ConfigurationError: for a bad argument, as ``Client`` does, or ``connect``.
        """
        if "connect" in client_kwargs or "url" in client_kwargs:
            raise ConfigurationError("pulsar.client() sets url and connect itself")
        client_kwargs.setdefault("reconnect", FAST_RECONNECT)
        client = Client(self.url, connect=self.connect, **client_kwargs)
        with self._broker.lock:
            self._clients.append(client)
        return client

    # -- what a topic holds ---------------------------------------------------------------------

    def publish(
        self,
        topic: str | TopicName,
        payload: bytes | str,
        *,
        key: str | None = None,
        properties: Mapping[str, str] | None = None,
        event_time: datetime | None = None,
    ) -> MessageId:
        """Store a message as a producer would; returns its id.

        Raises:
            ConfigurationError: for a bad topic name or argument.
        """
        name = _topic(topic)
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        if not isinstance(data, bytes):
            raise ConfigurationError(f"payload must be bytes or str, not {type(payload).__name__}")
        if key is not None and not isinstance(key, str):
            raise ConfigurationError(f"key must be a str or None, not {key!r}")
        props = dict(properties or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in props.items()):
            raise ConfigurationError(f"properties must map str to str, not {properties!r:.80}")
        millis = None if event_time is None else to_epoch_millis(event_time)
        with self._broker.lock:
            entry = self._broker.publish(
                self._broker.topic(name), Publication(data, key, props, millis)
            )
            self._broker.touch()
            return entry.message_id

    def stored(self, topic: str | TopicName) -> list[Message[None]]:
        """What the topic holds, in order (nothing for a non-persistent topic).

        The messages cannot be acked: no socket delivered them.
        """
        name = TopicName.parse(_topic(topic))
        with self._broker.lock:
            found = self._broker.topics.get(str(name))
            if found is None or not found.persistent:
                return []
            return [entry.message(name) for entry in found.entries]

    def topics(self) -> list[str]:
        """The full names of every topic used so far, sorted."""
        with self._broker.lock:
            return sorted(self._broker.topics)

    def subscriptions(self, topic: str | TopicName) -> list[str]:
        """The subscriptions of a topic, sorted."""
        with self._broker.lock:
            found = self._broker.topics.get(_topic(topic))
            return sorted(found.subscriptions) if found is not None else []

    def create_subscription(
        self, topic: str | TopicName, subscription: str, *, start: str = "latest"
    ) -> None:
        """Create a subscription at ``earliest`` or ``latest`` (nothing if it exists already).

        Raises:
            ConfigurationError: for a bad name or start.
        """
        if not isinstance(subscription, str) or not subscription:
            raise ConfigurationError("subscription must be a non-empty str")
        if start not in ("earliest", "latest"):
            raise ConfigurationError(f"start must be 'earliest' or 'latest', not {start!r}")
        with self._broker.lock:
            found = self._broker.topic(_topic(topic))
            if subscription not in found.subscriptions:
                first = 0 if start == "earliest" and found.persistent else len(found.entries)
                found.subscriptions[subscription] = Subscription(found, subscription, first)
            self._broker.touch()

    def backlog(self, topic: str | TopicName, subscription: str) -> int:
        """How many messages of the subscription are not acknowledged yet.

        Raises:
            NoSubscriptionError: (a ConfigurationError) when the topic has no such subscription.
        """
        return self._subscription(topic, subscription).backlog

    def unacked(self, topic: str | TopicName, subscription: str) -> int:
        """How many messages the subscription's consumers hold delivered and unsettled
        (nacked ones count until they go back).

        Raises:
            NoSubscriptionError: (a ConfigurationError) when the topic has no such subscription.
        """
        return len(self._subscription(topic, subscription).held)

    def _subscription(self, topic: str | TopicName, subscription: str) -> Subscription:
        name = _topic(topic)
        with self._broker.lock:
            found = self._broker.topics.get(name)
            held = found.subscriptions.get(subscription) if found is not None else None
            if held is None:
                known = sorted(found.subscriptions) if found is not None else []
                raise NoSubscriptionError(
                    f"{name} has no subscription {subscription!r} (it has {known})"
                )
            return held

    def sockets(self, kind: str | None = None) -> list[SocketInfo]:
        """The sockets connected now, oldest first; only those of ``kind`` when given
        (``producer``, ``consumer``, ``reader``)."""
        with self._broker.lock:
            return [
                SocketInfo.of(s) for s in self._broker.sockets if kind is None or s.kind == kind
            ]

    # -- faults -------------------------------------------------------------------------------

    def cut(self) -> int:
        """Drop every live socket, as a network cut does; returns how many.

        Frames in flight are lost both ways; the broker lets go of each socket at once (what a
        consumer held is delivered again); clients reconnect with their backoff.
        """
        with self._broker.lock:
            sockets = list(self._broker.sockets)
            for socket in sockets:
                socket.cut("the network was cut")
            self._broker.touch()
            return len(sockets)

    def refuse_next(self, status: int = 503, reason: str | None = None, *, count: int = 1) -> None:
        """Refuse the next ``count`` handshakes with an HTTP ``status`` (400 to 599).

        The client raises the typed error of that status (``AuthorizationError`` for 403,
        ``ConflictError`` for 409, ``ServerError`` for 5xx ...), or retries the retriable ones.

        Raises:
            ConfigurationError: for a status that is not an error or a bad count.
        """
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ConfigurationError(f"status must be an int from 400 to 599, not {status!r}")
        text = reason if reason is not None else DEFAULT_REASONS.get(status, f"HTTP {status}")
        with self._broker.lock:
            self._broker.faults.refuse(status, text, _count(count))

    def fail_next_send(
        self,
        topic: str | TopicName | None = None,
        *,
        error: str = "Failed to send message: Timeout",
        count: int = 1,
    ) -> None:
        """Fail the next ``count`` sends (on ``topic``, or on any) with ``send-error:8``,
        as a broker that could not store them answers; nothing is stored."""
        name = None if topic is None else _topic(topic)
        with self._broker.lock:
            self._broker.faults.fail_send(name, error, _count(count))

    def drop_next(
        self, kind: str = "ack", *, topic: str | TopicName | None = None, count: int = 1
    ) -> None:
        """Lose the next ``count`` frames of ``kind`` with their socket, as a cut right then.

        ``kind`` is ``"send"`` (a producer's message, lost before the broker stores it),
        ``"ack"`` (the broker's ack of a stored message: the producer sends it again, so it is
        stored twice), ``"message"`` (a delivery to a consumer or reader) or ``"settle"`` (an
        ack, nack or permit from a consumer: reported lost on ``client.errors``).

        Raises:
            ConfigurationError: for an unknown kind or a bad count.
        """
        if kind not in DROP_KINDS:
            raise ConfigurationError(f"kind must be one of {list(DROP_KINDS)}, not {kind!r}")
        name = None if topic is None else _topic(topic)
        with self._broker.lock:
            self._broker.faults.drop(kind, name, _count(count))

    # -- waiting and ending ---------------------------------------------------------------------

    def wait_until(
        self, condition: Callable[[], object], timeout: float = 10.0, *, step: float = 1.0
    ) -> None:
        """Wait until ``condition()`` holds, at most ``timeout`` real seconds.

        It is checked at every change in the broker and every 5 ms; a condition that asks
        for a subscription not made yet (``backlog``, ``unacked``) does not hold yet. With a
        virtual-time scheduler (a ``TestScheduler``), virtual time moves on whenever nothing
        changed for 5 ms of real time: by ``step`` seconds, doubling while it stays quiet (at
        most a minute at once), so retry delays, nack delays and ack timeouts pass in
        milliseconds, and each timer runs at exactly its virtual time. A handler that takes
        real time looks slow in virtual time: keep ``process(timeout=...)`` generous.

        Raises:
            StargateTimeoutError: when it does not hold in time (chained to the last "no such
                subscription" error, if that is why).
        """
        if not step > 0:
            raise ConfigurationError(f"step must be positive, not {step!r}")
        wait_until(self._broker, self.scheduler, condition, timeout, step)

    def close(self) -> None:
        """Close the clients made by :meth:`client`, then every socket still open (1001).

        What was stored stays readable. A client of your own that still runs finds its sockets
        closed and cannot reconnect (a non-retriable error ends its streams).
        """
        with self._broker.lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        self._broker.close()

    def __enter__(self) -> MemoryPulsar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        with self._broker.lock:
            state = "closed" if self._broker.closed else "open"
            return (
                f"MemoryPulsar({state}, topics={len(self._broker.topics)},"
                f" sockets={len(self._broker.sockets)})"
            )


def _topic(topic: str | TopicName) -> str:
    """A topic's full name, completed as the client completes it."""
    return str(TopicName.parse(topic))


def _count(count: int) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigurationError(f"count must be a positive int, not {count!r}")
    return count
