"""Hiding pulsar-lite's spurious re-dispatches from a socket, letting real redeliveries through.

pulsar-lite hands Exclusive/Failover consumers and readers some non-batched messages 2-4 times once
a backlog exceeds the receiver queue. Pulsar never gives a consumer a message it still holds or has
acknowledged, so each socket keeps:

* the ids it holds (delivered, not yet acked or nacked): a re-arrival is dropped unless it is a real
  redelivery, recognised by a higher redelivery count; held ids whose ack timeout ran out are
  handed back by ``expired()`` for the socket to deliver again (the gateway runs ack timeouts
  itself: the broker client refuses timeouts under 10 s and pulsar-lite ignores redelivery
  requests outside Shared subscriptions);
* the last ``ACKED_BOUND`` ids it acknowledged (a FIFO record, about 100 bytes per id), whose
  re-arrivals are dropped;
* for readers, the last id per partition: reader ids only move forward, so anything at or before
  it is a copy (constant memory).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

ACKED_BOUND = 100_000

Position = tuple[int, int, int]


@dataclass(slots=True)
class Held:
    """A message delivered on the socket and not settled yet."""

    message: Any
    redelivery_count: int
    delivered_at: float


class ConsumerLedger:
    """Which ids one consumer socket holds or has acknowledged. Callers serialise access."""

    def __init__(self, ack_timeout_millis: int = 0, acked_bound: int = ACKED_BOUND) -> None:
        # Insertion order is delivery order, so expiry scans stop at the first live entry.
        self._ack_timeout = ack_timeout_millis / 1000.0
        self._acked_bound = acked_bound
        self._held: dict[bytes, Held] = {}
        self._acked: OrderedDict[bytes, None] = OrderedDict()

    def admit(self, key: bytes, message: Any, redelivery_count: int) -> tuple[bool, bool]:
        """Decide on an arriving message.

        Returns:
            (deliver, replaces_held): whether to pass it on, and whether it replaces an id the
            socket already held (a real redelivery that takes no new window slot).
        """
        if key in self._acked:
            return False, False
        now = time.monotonic()
        held = self._held.get(key)
        if held is not None:
            if redelivery_count > held.redelivery_count:
                del self._held[key]
                self._held[key] = Held(message, redelivery_count, now)
                return True, True
            return False, False
        self._held[key] = Held(message, redelivery_count, now)
        return True, False

    def expired(self) -> list[tuple[bytes, Held]]:
        """Held messages whose ack timeout ran out, now counted as redelivered once more."""
        if self._ack_timeout <= 0:
            return []
        now = time.monotonic()
        due: list[tuple[bytes, Held]] = []
        for key, held in self._held.items():
            if now - held.delivered_at < self._ack_timeout:
                break
            due.append((key, held))
        for key, held in due:
            del self._held[key]
            held.redelivery_count += 1
            held.delivered_at = now
            self._held[key] = held
        return due

    def settle(self, key: bytes, acked: bool) -> Any | None:
        """Forget a held id (recording it if acked); returns its message if it was held."""
        held = self._held.pop(key, None)
        if acked:
            self._acked[key] = None
            if len(self._acked) > self._acked_bound:
                self._acked.popitem(last=False)
        return held.message if held is not None else None

    def redelivery_count(self, key: bytes) -> int:
        """The redelivery count a held id was delivered with (0 if not held)."""
        held = self._held.get(key)
        return held.redelivery_count if held is not None else 0

    def knows(self, key: bytes) -> bool:
        """Whether the socket holds ``key`` or has acknowledged it (recently)."""
        return key in self._held or key in self._acked

    def held_messages(self) -> list[Any]:
        """The messages held now, in delivery order."""
        return [held.message for held in self._held.values()]

    @property
    def held_count(self) -> int:
        """How many messages the socket holds unsettled."""
        return len(self._held)


class ReaderLedger:
    """The last delivered position per partition of one reader socket."""

    def __init__(self) -> None:
        self._last: dict[int, Position] = {}

    def admit(self, partition: int, position: Position) -> bool:
        """Whether a message at ``position`` is new (ahead of the last one on its partition)."""
        last = self._last.get(partition)
        if last is not None and position <= last:
            return False
        self._last[partition] = position
        return True
