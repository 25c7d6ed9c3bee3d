"""How clients reach a MemoryPulsar: its connector, and what a test may see of its sockets."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from reactivex import abc
from reactivex.scheduler import VirtualTimeScheduler

from rxstargate._config import TransportConfig
from rxstargate._seam import Transport
from rxstargate.exceptions import ConfigurationError, StargateTimeoutError
from rxstargate.models import MessageId, TopicName
from rxstargate.testing._broker import Broker
from rxstargate.testing._consumer import ConsumerSocket
from rxstargate.testing._sockets import ProducerSocket, Socket

__all__ = ["MemoryConnector", "NoSubscriptionError", "SocketInfo", "wait_until"]

#: Real seconds without a change in the broker after which virtual time moves on.
QUIET_SECONDS = 0.005
#: The most virtual time one quiet moment moves on (the step doubles up to it).
MAX_STEP = 60.0


class NoSubscriptionError(ConfigurationError, LookupError):
    """A MemoryPulsar was asked about a subscription its topic does not have."""


class MemoryConnector:
    """A :data:`~rxstargate.Connector` to one MemoryPulsar (also its admin API's lastMessageId).

    Give it to ``rs.Client(url, connect=...)``; ``MemoryPulsar.client()`` does.
    """

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    def __call__(self, url: str, config: TransportConfig, name: str = "socket") -> Transport:
        """Complete a handshake in memory.

        Raises:
            HandshakeError: a typed subclass, when the handshake is refused.
            StargateConnectionError: once the MemoryPulsar is closed (not retriable).
        """
        return self._broker.accept(url, config.token)

    def last_message_id(
        self, base_url: str, topic: TopicName, config: TransportConfig
    ) -> MessageId | None:
        """The topic's last message id, as the admin API answers it.

        Raises:
            HandshakeError: 401 without the right token, 405 for a non-persistent topic.
        """
        return self._broker.last_message_id(str(topic), config.token)

    def __repr__(self) -> str:
        return "MemoryConnector()"


@dataclass(frozen=True, slots=True)
class SocketInfo:
    """One socket connected to a MemoryPulsar.

    Attributes:
        kind: ``producer``, ``consumer``, ``reader`` or ``pingpong``.
        topics: the full names of its topics (several for a multi-topic consumer).
        subscription: a consumer's subscription, else None.
        subscription_type: a consumer's subscription type, else None.
        name: the producer's or consumer's name (``producer_name``, ``consumer_name``), if set.
        url: the URL it was opened with (without a token).
        permits: a pull-mode consumer's credit left (its permits not used yet), else None.
        unacked: the messages a consumer holds delivered and unsettled (0 for others).
    """

    kind: str
    topics: tuple[str, ...]
    subscription: str | None
    subscription_type: str | None
    name: str | None
    url: str
    permits: int | None = None
    unacked: int = 0

    @classmethod
    def of(cls, socket: Socket) -> SocketInfo:
        """Describe a broker socket."""
        if isinstance(socket, ConsumerSocket):
            return cls(
                socket.kind,
                socket.topics,
                socket.route.subscription,
                socket.params.subscription_type,
                socket.consumer_name,
                socket.transport.url,
                socket.permits,
                socket.unacked,
            )
        name = socket.name if isinstance(socket, ProducerSocket) else None
        return cls(socket.kind, socket.topics, None, None, name, socket.transport.url)


def wait_until(
    broker: Broker,
    scheduler: abc.SchedulerBase,
    condition: Callable[[], object],
    timeout: float,
    step: float,
) -> None:
    """Wait until ``condition()`` holds (checked at each change, and every few milliseconds);
    on a virtual clock, move it on when all is quiet.

    Raises:
        StargateTimeoutError: when it does not hold within ``timeout`` real seconds.
    """
    virtual = isinstance(scheduler, VirtualTimeScheduler)
    deadline = time.monotonic() + timeout
    advance = step
    missing: NoSubscriptionError | None = None
    while True:
        with broker.lock:
            seen = broker.version
        try:
            if condition():
                return
            missing = None
        except NoSubscriptionError as exc:  # its consumer has not subscribed yet
            missing = exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            detail = f": {missing}" if missing is not None else ""
            raise StargateTimeoutError(
                f"the condition did not hold within {timeout:g} s{detail}"
            ) from missing
        with broker.changed:
            if broker.version == seen:
                # Looked at again soon even without a change: the client's threads act on
                # what the broker sent a moment after it sent it.
                broker.changed.wait(min(remaining, QUIET_SECONDS))
            moved = broker.version != seen
        if moved:
            advance = step
        elif virtual:
            assert isinstance(scheduler, VirtualTimeScheduler)
            scheduler.advance_by(advance)  # outside the lock: actions take it themselves
            advance = min(advance * 2, max(step, MAX_STEP))
