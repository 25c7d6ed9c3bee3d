"""Which subscriptions the gateway's consumers hold, to refuse a busy one before asking the broker.

pulsar-lite refuses a second Exclusive consumer only by letting the subscribe time out (and then
resets the shared broker connection); Pulsar answers ConsumerBusy at once.
"""

from __future__ import annotations

import threading


class SubscriptionBusyError(Exception):
    """Raised when a subscription is held exclusively or with another type."""


class Subscriptions:
    """Consumers per (topic, subscription), with the subscription type they share."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], tuple[str, int]] = {}

    def acquire(self, topic: str, subscription: str, subscription_type: str) -> None:
        """Register one more consumer.

        Raises:
            SubscriptionBusyError: as Pulsar's ConsumerBusy would.
        """
        key = (topic, subscription)
        with self._lock:
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

    def release(self, topic: str, subscription: str) -> None:
        """Forget one consumer of the subscription."""
        key = (topic, subscription)
        with self._lock:
            held = self._held.get(key)
            if held is None:
                return
            if held[1] <= 1:
                del self._held[key]
            else:
                self._held[key] = (held[0], held[1] - 1)
