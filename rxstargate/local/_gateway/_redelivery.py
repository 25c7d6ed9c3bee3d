"""Negative acks waiting out ``negativeAckRedeliveryDelay``, and who redelivers them.

Pulsar's consumer keeps a nacked message back for the delay and then asks the broker to
redeliver it. The gateway keeps that delay itself, because the broker client's own delay is
per consumer and the gateway needs it short for another purpose: with a dead-letter policy an
expired ack timeout must go through the broker client's redelivery (which counts it towards
``maxRedeliverCount``) at once, not a negative-ack delay later (60 s by default). So the broker
consumer nacks after ``BROKER_NACK_DELAY_MS`` and the gateway holds each nack for the rest.

Who redelivers depends on the subscription type. pulsar-lite honours redelivery requests for
Shared and Key_Shared subscriptions only; for Exclusive and Failover, where Pulsar's client
rewinds the whole subscription, it does nothing, so the gateway delivers the message again on
the socket itself (one message, not every unacked one as Pulsar's rewind would).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

# The broker consumer's negative-ack delay: its redelivery timer's granularity (about a third
# of this) is what a nack waits beyond the socket's own delay.
BROKER_NACK_DELAY_MS = 100

BROKER_REDELIVERS = frozenset({"Shared", "Key_Shared"})


@dataclass(frozen=True, slots=True)
class Nacked:
    """A nacked message waiting for its delay.

    Attributes:
        due: when to redeliver it (the session's clock).
        key: the serialized message id.
        target: what to nack at the broker: the message, or its id when the socket did not
            hold it.
        message: the message when the socket held it (needed to deliver it again), else None.
        redelivery_count: the count it was delivered with.
    """

    due: float
    key: bytes
    target: Any
    message: Any | None
    redelivery_count: int


class DelayedNacks:
    """Nacks in the order given, each due ``delay`` seconds later (one delay per socket)."""

    def __init__(self, delay_millis: int, broker_delay_millis: int = 0) -> None:
        self._delay = max(0, delay_millis - broker_delay_millis) / 1000.0
        self._waiting: deque[Nacked] = deque()

    @property
    def immediate(self) -> bool:
        """Whether nacks are due at once (no delay left to wait here)."""
        return self._delay == 0

    def add(
        self, key: bytes, target: Any, message: Any | None, redelivery_count: int, now: float
    ) -> None:
        """Start the delay of a nack given at ``now`` (see :class:`Nacked` for the fields)."""
        self._waiting.append(Nacked(now + self._delay, key, target, message, redelivery_count))

    def pop_due(self, now: float) -> Nacked | None:
        """The oldest nack whose delay is over, or None."""
        if self._waiting and self._waiting[0].due <= now:
            return self._waiting.popleft()
        return None

    def push_back(self, nacked: Nacked) -> None:
        """Return a due nack that cannot be redelivered yet (it goes first next time)."""
        self._waiting.appendleft(nacked)

    def __len__(self) -> int:
        return len(self._waiting)
