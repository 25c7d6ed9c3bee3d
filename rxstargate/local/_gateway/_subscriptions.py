"""Subscriptions and producer names the gateway's sockets hold, to refuse busy ones as Pulsar does.

pulsar-lite refuses a second Exclusive consumer only by letting the subscribe time out (and then
resets the shared broker connection); Pulsar answers ConsumerBusy at once. A consumer whose socket
is closing still holds its subscription until its broker consumer is closed; a newcomer waits for
that (briefly) instead of being refused, so a client can reconnect at once.
"""

from __future__ import annotations

import asyncio
import time

CLOSING_WAIT_SECONDS = 5.0


class SubscriptionBusyError(Exception):
    """Raised when a subscription is held exclusively or with another type."""


class Subscriptions:
    """Consumers per (topic, subscription), with the subscription type they share.

    Used on the event loop only.
    """

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], tuple[str, int]] = {}
        self._closing: dict[tuple[str, str], int] = {}

    async def acquire(self, topic: str, subscription: str, subscription_type: str) -> None:
        """Register one more consumer.

        Raises:
            SubscriptionBusyError: as Pulsar's ConsumerBusy would.
        """
        key = (topic, subscription)
        deadline = time.monotonic() + CLOSING_WAIT_SECONDS
        while True:
            try:
                self._try_acquire(key, subscription_type)
                return
            except SubscriptionBusyError:
                held = self._held.get(key)
                all_closing = held is not None and self._closing.get(key, 0) >= held[1]
                if not all_closing or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.02)

    def _try_acquire(self, key: tuple[str, str], subscription_type: str) -> None:
        held = self._held.get(key)
        if held is None:
            self._held[key] = (subscription_type, 1)
            return
        held_type, count = held
        if held_type == "Exclusive":
            raise SubscriptionBusyError("Exclusive consumer is already connected")
        if held_type != subscription_type:
            raise SubscriptionBusyError("Subscription is of different type")
        self._held[key] = (held_type, count + 1)

    def closing(self, topic: str, subscription: str) -> None:
        """Note that one consumer of the subscription is on its way out."""
        key = (topic, subscription)
        self._closing[key] = self._closing.get(key, 0) + 1

    def release(self, topic: str, subscription: str, was_closing: bool = True) -> None:
        """Forget one consumer of the subscription."""
        key = (topic, subscription)
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
