"""The in-memory broker: topics, subscriptions and sockets behind one lock, and their handshakes.

Every change happens under :attr:`Broker.lock` (re-entrant: a delivery may end its socket, a
dead letter publishes) and is followed by :meth:`Broker.touch`, which wakes whoever waits for
a state (``MemoryPulsar.wait_until``). Delays run on the broker's reactivex scheduler: its
actions take the lock too. The broker starts no thread; a real-time scheduler may.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

from reactivex import abc
from reactivex.disposable import Disposable, SingleAssignmentDisposable

from rxstargate._config import redact_url
from rxstargate._service_rules.params import ConsumerParams, ReaderParams
from rxstargate._service_rules.paths import Endpoint, Route
from rxstargate.exceptions import StargateConnectionError, handshake_error_for_status
from rxstargate.models import MessageId
from rxstargate.testing._consumer import ConsumerSocket
from rxstargate.testing._endpoints import (
    Refusal,
    consumer_params,
    parse_path,
    producer_params,
    reader_params,
    topic_name,
)
from rxstargate.testing._faults import Faults
from rxstargate.testing._sockets import PingPongSocket, ProducerSocket, ReaderSocket, Socket
from rxstargate.testing._topics import Entry, Subscription, Topic
from rxstargate.testing._transport import MemoryTransport
from rxstargate.testing._wire import Publication

__all__ = ["Broker"]


class Broker:
    """Pulsar's broker and WebSocket service in one object, in memory.

    Args:
        scheduler: where delays run and what time it is.
        token: when set, every handshake must carry it (header or ``?token=``).
    """

    def __init__(self, scheduler: abc.SchedulerBase, token: str | None = None) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        self.faults = Faults()
        self.topics: dict[str, Topic] = {}
        self.sockets: list[Socket] = []
        self.closed = False
        self._scheduler = scheduler
        self._token = token
        self._ledgers = itertools.count(1)
        self._joins = itertools.count(1)
        self._timers: set[abc.DisposableBase] = set()

    # -- time ----------------------------------------------------------------------------------

    def now(self) -> float:
        """The scheduler's time, in seconds since the epoch."""
        return self._scheduler.now.timestamp()

    def schedule(self, delay: float, action: Callable[[], None]) -> abc.DisposableBase:
        """Run ``action`` under the lock after ``delay`` seconds on the scheduler.

        Callers run what is due already themselves: the scheduler gets at least a microsecond.
        """
        holder = SingleAssignmentDisposable()

        def run(_: abc.SchedulerBase, __: object = None) -> None:
            with self.lock:
                self._timers.discard(holder)
                if self.closed or holder.is_disposed:
                    return
                try:
                    action()
                finally:
                    self.touch()

        if self.closed:
            return Disposable()
        self._timers.add(holder)
        holder.disposable = self._scheduler.schedule_relative(max(delay, 1e-6), run)
        return holder

    def touch(self) -> None:
        """Note a change and wake whoever waits for one (call under the lock)."""
        self.version += 1
        self.changed.notify_all()

    # -- topics --------------------------------------------------------------------------------

    def topic(self, name: str) -> Topic:
        """The topic of that full name, created when first used."""
        topic = self.topics.get(name)
        if topic is None:
            topic = self.topics[name] = Topic(name, next(self._ledgers))
        return topic

    def publish(self, topic: Topic, publication: Publication) -> Entry:
        """Store a message and hand it to whoever may take it."""
        entry = topic.append(publication, int(self.now() * 1000))
        for subscription in list(topic.subscriptions.values()):
            subscription.dispatch()
            if not topic.persistent and entry.index in subscription.pending:
                subscription.skip(entry.index)  # no credit now: a non-persistent topic drops it
        for reader in list(topic.readers):
            reader.pump()
            if not topic.persistent:
                reader.position = max(reader.position, entry.index + 1)
        return entry

    def acknowledge(self, subscription: Subscription, index: int) -> None:
        """Acknowledge a message on a subscription, whichever socket held it."""
        holder = subscription.ack(index)
        if isinstance(holder, ConsumerSocket):
            holder.forget(subscription, index)

    def dead_letter(self, subscription: Subscription, index: int, target: str) -> None:
        """Publish a copy to ``target`` (with Pulsar's REAL_TOPIC and ORIGIN_MESSAGE_ID
        properties), then acknowledge the original."""
        topic = subscription.topic
        entry = topic.entries[index]
        properties = dict(entry.properties)
        properties["REAL_TOPIC"] = topic.name
        properties["ORIGIN_MESSAGE_ID"] = f"{topic.ledger}:{index}:-1"
        copy = Publication(entry.payload, entry.key, properties, entry.event_time)
        self.publish(self.topic(target), copy)
        self.acknowledge(subscription, index)

    def last_message_id(self, name: str, token: str | None) -> MessageId | None:
        """The admin API's ``lastMessageId`` (the topic is created, as local Pulsar does).

        Raises:
            HandshakeError: 401 without the token, 405 for a non-persistent topic.
        """
        with self.lock:
            try:
                self._authenticate(token, {})
            except Refusal as exc:
                raise handshake_error_for_status(exc.status, exc.reason) from None
            if not name.startswith("persistent://"):
                raise handshake_error_for_status(
                    405, "GetLastMessageId on a non-persistent topic is not allowed"
                )
            topic = self.topic(name)
            self.touch()
            return topic.entries[-1].message_id if topic.entries else None

    # -- sockets -------------------------------------------------------------------------------

    def accept(self, url: str, token: str | None) -> MemoryTransport:
        """A handshake: the open transport, or the typed error of a refusal.

        Raises:
            HandshakeError: a typed subclass with Pulsar's status and reason.
            StargateConnectionError: (not retriable) once the broker is closed.
        """
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        safe = redact_url(url)
        with self.lock:
            if self.closed:
                error = StargateConnectionError(f"cannot connect to {safe}: MemoryPulsar is closed")
                error.retriable = False
                raise error
            try:
                refusal = self.faults.take_refusal()
                if refusal is not None:
                    raise Refusal(*refusal)
                route = parse_path(parts.path, query)
                self._authenticate(token, query)
                transport = MemoryTransport(safe)
                socket = self._open(route, query, transport)
            except Refusal as exc:
                self.touch()
                raise handshake_error_for_status(exc.status, exc.reason, safe) from None
            transport.attach(socket)
            self.sockets.append(socket)
            if isinstance(socket, ConsumerSocket):
                socket.dispatch()
            elif isinstance(socket, ReaderSocket):
                socket.pump()
            self.touch()
            return transport

    def forget(self, socket: Socket) -> None:
        """A socket ended."""
        if socket in self.sockets:
            self.sockets.remove(socket)

    def _authenticate(self, token: str | None, query: dict[str, str]) -> None:
        if self._token is None:
            return
        header = f"Bearer {token}" if token else None
        if header is None and "token" in query:
            given = query["token"]
            header = given if given.startswith("Bearer ") else f"Bearer {given}"
        if header != f"Bearer {self._token}":
            raise Refusal(401, "Failed to authenticate")

    def _open(self, route: Route, query: dict[str, str], transport: MemoryTransport) -> Socket:
        if route.endpoint is Endpoint.PRODUCER:
            params = producer_params(query)
            topic = self.topic(route.topic)
            if params.producer_name in topic.producer_names:
                raise Refusal(
                    409,
                    "Failed to create producer: Producer with name"
                    f" '{params.producer_name}' is already connected to topic",
                )
            return ProducerSocket(self, transport, route, topic, params.producer_name)
        if route.endpoint in (Endpoint.CONSUMER, Endpoint.MULTI_TOPIC_CONSUMER):
            return self._open_consumer(route, consumer_params(route, query), transport)
        if route.endpoint is Endpoint.READER:
            return self._open_reader(route, reader_params(query), transport)
        return PingPongSocket(self, transport, route)

    def _open_consumer(
        self, route: Route, params: ConsumerParams, transport: MemoryTransport
    ) -> ConsumerSocket:
        if params.dead_letter_topic is not None:
            try:
                params = replace(params, dead_letter_topic=topic_name(params.dead_letter_topic))
            except Refusal as exc:
                raise Refusal(400, f"Invalid query params: {exc.reason}") from None
        # A pattern is matched once, now, as local Pulsar does (maybe to no topic at all).
        names = self._match(route) if route.pattern is not None else route.topics or (route.topic,)
        existing = [self.topic(n).subscriptions.get(route.subscription) for n in names]
        for subscription in existing:
            reason = subscription and subscription.refusal(params.subscription_type)
            if reason:
                raise Refusal(409, f"Failed to create consumer: {reason}")
        base = None if route.pattern is not None else route.topic
        consumer = ConsumerSocket(self, transport, route, params, next(self._joins), base)
        for name, subscription in zip(names, existing, strict=True):
            if subscription is None:
                topic = self.topic(name)
                earliest = params.initial_position == "Earliest" and topic.persistent
                start = 0 if earliest else len(topic.entries)
                subscription = Subscription(topic, route.subscription, start)
                topic.subscriptions[route.subscription] = subscription
            consumer.attach(subscription)
        return consumer

    def _match(self, route: Route) -> tuple[str, ...]:
        """The persistent topics of the pattern's namespace whose names match it whole."""
        assert route.pattern is not None
        pattern = route.pattern.split("://", 1)[-1]
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise Refusal(400, f"Invalid query params: {exc} in pattern {pattern!r}") from None
        namespace = route.topic.split("://", 1)[1].rsplit("/", 1)[0]
        return tuple(
            sorted(
                name
                for name in self.topics
                if name.startswith("persistent://")
                and name[len("persistent://") :].rsplit("/", 1)[0] == namespace
                and regex.fullmatch(name[len("persistent://") :])
            )
        )

    def _open_reader(
        self, route: Route, params: ReaderParams, transport: MemoryTransport
    ) -> ReaderSocket:
        topic = self.topic(route.topic)
        start = params.message_id
        if start == "latest" or not topic.persistent:
            position = len(topic.entries)
        elif start == "earliest":
            position = 0
        else:
            try:
                position = topic.position_after(MessageId(start))
            except ValueError as exc:
                raise Refusal(500, f"Failed to create reader: {exc}") from None
        return ReaderSocket(self, transport, route, topic, position, params.receiver_queue_size)

    # -- ending --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every socket (1001, going away, as a stopping server does) and every timer."""
        with self.lock:
            self.closed = True
            for socket in list(self.sockets):
                socket.close(1001, "MemoryPulsar is closing")
            timers, self._timers = self._timers, set()
            self.touch()
        for timer in timers:
            timer.dispose()
