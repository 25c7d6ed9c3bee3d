"""Subscriptions and producer names the gateway's sockets hold, to refuse busy ones as Pulsar does.

pulsar-lite refuses a second Exclusive consumer only by letting the subscribe time out (and then
resets the shared broker connection); Pulsar answers ConsumerBusy at once. A consumer whose socket
is closing still holds its subscription until its broker consumer is closed; a newcomer waits for
that (briefly) instead of being refused, so a client can reconnect at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

CLOSING_WAIT_SECONDS = 5.0


class SubscriptionBusyError(Exception):
    """Raised when a subscription is held exclusively or with another type."""


class Subscriptions:
    """Consumers per (topic, subscription), with the subscription type they share.

    A v3 consumer of several topics counts as one consumer of the subscription on each of them.

    Used on the event loop only.
    """

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], tuple[str, int]] = {}
        self._closing: dict[tuple[str, str], int] = {}

    async def acquire(
        self, topics: str | Iterable[str], subscription: str, subscription_type: str
    ) -> None:
        """Register one more consumer, on one topic or on each of several (a v3 consumer).

        Several topics are taken all together or not at all.

        Raises:
            SubscriptionBusyError: as Pulsar's ConsumerBusy would (for any of the topics).
        """
        names = [topics] if isinstance(topics, str) else list(dict.fromkeys(topics))
        keys = [(topic, subscription) for topic in names]
        deadline = time.monotonic() + CLOSING_WAIT_SECONDS
        while True:
            refusals = [(key, self._refusal(key, subscription_type)) for key in keys]
            busy = [(key, refusal) for key, refusal in refusals if refusal is not None]
            if not busy:
                for key in keys:
                    self._take(key, subscription_type)
                return
            # Busy only because of consumers on their way out: wait for them, briefly.
            if time.monotonic() > deadline or not all(self._only_closing(k) for k, _ in busy):
                raise SubscriptionBusyError(busy[0][1])
            await asyncio.sleep(0.02)

    def _only_closing(self, key: tuple[str, str]) -> bool:
        held = self._held.get(key)
        return held is not None and self._closing.get(key, 0) >= held[1]

    def _refusal(self, key: tuple[str, str], subscription_type: str) -> str | None:
        held = self._held.get(key)
        if held is None:
            return None
        if held[0] == "Exclusive":
            return "Exclusive consumer is already connected"
        if held[0] != subscription_type:
            return "Subscription is of different type"
        return None

    def _take(self, key: tuple[str, str], subscription_type: str) -> None:
        held = self._held.get(key)
        self._held[key] = (subscription_type, 1) if held is None else (held[0], held[1] + 1)

    def closing(self, topics: str | Iterable[str], subscription: str) -> None:
        """Note that one consumer of the subscription (on each topic) is on its way out."""
        for topic in [topics] if isinstance(topics, str) else dict.fromkeys(topics):
            key = (topic, subscription)
            self._closing[key] = self._closing.get(key, 0) + 1

    def release(
        self, topics: str | Iterable[str], subscription: str, was_closing: bool = True
    ) -> None:
        """Forget one consumer of the subscription (on each topic)."""
        for topic in [topics] if isinstance(topics, str) else dict.fromkeys(topics):
            self._release((topic, subscription), was_closing)

    def _release(self, key: tuple[str, str], was_closing: bool) -> None:
        if was_closing and key in self._closing:
            self._closing[key] -= 1
            if self._closing[key] <= 0:
                del self._closing[key]
        held = self._held.get(key)
        if held is None:
            return
        if held[1] <= 1:
            del self._held[key]
        else:
            self._held[key] = (held[0], held[1] - 1)


class ProducerNames:
    """Producer names in use per topic: pulsar-lite lets two producers share one, Pulsar does not.

    A name whose socket is closing is waited for (briefly), as for subscriptions.
    Used on the event loop only.
    """

    def __init__(self) -> None:
        self._names: set[tuple[str, str]] = set()
        self._closing: set[tuple[str, str]] = set()

    async def acquire(self, topic: str, name: str) -> None:
        """Claim a name on a topic.

        Raises:
            SubscriptionBusyError: when a producer of the gateway already has it.
        """
        key = (topic, name)
        deadline = time.monotonic() + CLOSING_WAIT_SECONDS
        while key in self._names:
            if key not in self._closing or time.monotonic() > deadline:
                raise SubscriptionBusyError(
                    f"Producer with name '{name}' is already connected to topic"
                )
            await asyncio.sleep(0.02)
        self._names.add(key)

    def closing(self, topic: str, name: str) -> None:
        """Note that the producer holding the name is on its way out."""
        self._closing.add((topic, name))

    def release(self, topic: str, name: str) -> None:
        """Give a name back."""
        self._names.discard((topic, name))
        self._closing.discard((topic, name))
