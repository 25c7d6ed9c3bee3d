"""The broker's storage: topics that keep messages, and subscriptions that hand them out.

A subscription is a cursor over its topic: what it has not delivered yet (``pending``, in topic
order, redeliveries first), what its consumers hold unsettled (``held``) and what they acked.
Which consumer gets a message follows the subscription type: Exclusive (its one consumer),
Failover (the first by priority level and name), Shared (round-robin among those with credit,
the highest priority first) and Key_Shared (by a hash of the key, so one key always reaches
the same consumer while the consumers stay the same). A consumer without credit gets nothing.

Used under the broker's lock only.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING

from rxstargate.models import Message, MessageId, TopicName
from rxstargate.testing._wire import Publication, message_frame

if TYPE_CHECKING:
    from rxstargate.testing._consumer import ConsumerSocket
    from rxstargate.testing._sockets import ReaderSocket

__all__ = ["Entry", "Subscription", "Topic"]

_HASH_RANGE = 65536
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored message."""

    index: int
    message_id: MessageId
    payload: bytes
    key: str | None
    properties: dict[str, str]
    publish_time: int  # epoch milliseconds
    event_time: int | None

    def frame(self, redelivery_count: int, topic: str | None = None) -> str:
        """The message frame a consumer or reader gets (``topic`` on v3 sockets)."""
        return message_frame(
            str(self.message_id),
            self.payload,
            self.properties,
            self.publish_time,
            redelivery_count,
            event_time=self.event_time,
            key=self.key,
            topic=topic,
        )

    def message(self, topic: TopicName) -> Message[None]:
        """The entry as a :class:`~rxstargate.Message` that no socket settles."""
        return Message(
            topic=topic,
            payload=self.payload,
            message_id=self.message_id,
            key=self.key,
            properties=MappingProxyType(dict(self.properties)),
            publish_time=_EPOCH + timedelta(milliseconds=self.publish_time),
            event_time=_EPOCH + timedelta(milliseconds=self.event_time)
            if self.event_time
            else None,
        )


def _time(epoch_millis: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=epoch_millis)


class Topic:
    """A topic's messages in order (one ledger), its subscriptions and its readers."""

    def __init__(self, name: str, ledger: int) -> None:
        self.name = name
        self.ledger = ledger
        self.persistent = name.startswith("persistent://")
        self.entries: list[Entry] = []
        self.subscriptions: dict[str, Subscription] = {}
        self.readers: list[ReaderSocket] = []
        self.producer_names: set[str] = set()

    def append(self, publication: Publication, now_millis: int) -> Entry:
        """Store a message; subscriptions without a consumer skip it on non-persistent topics."""
        index = len(self.entries)
        entry = Entry(
            index,
            MessageId.from_parts(self.ledger, index),
            publication.payload,
            publication.key,
            publication.properties,
            now_millis,
            publication.event_time,
        )
        self.entries.append(entry)
        if not self.persistent:
            for subscription in self.subscriptions.values():
                if not subscription.consumers:
                    subscription.skip(index)
        return entry

    def index_of(self, message_id: MessageId) -> int | None:
        """The index of a message of this topic, or None for an id of no message here.

        Raises:
            ValueError: when the id is not a message id at all.
        """
        fields = message_id.fields
        if fields.ledger_id == self.ledger and 0 <= fields.entry_id < len(self.entries):
            return fields.entry_id
        return None

    def position_after(self, message_id: MessageId) -> int:
        """Where a reader that starts after ``message_id`` (exclusive) begins.

        Raises:
            ValueError: when the id is not a message id at all.
        """
        fields = message_id.fields
        if fields.ledger_id < self.ledger:
            return 0
        if fields.ledger_id > self.ledger:
            return len(self.entries)
        return max(0, min(fields.entry_id + 1, len(self.entries)))


@dataclass(eq=False)
class Subscription:
    """A cursor over one topic and the consumers that share it.

    Attributes:
        subscription_type: the type its consumers share; None while it has none.
        consumers: connected consumers, oldest first.
        pending: indices waiting to be delivered (again) before ``next_index``.
        held: delivered and unsettled index -> the consumer holding it.
        redeliveries: index -> how many times it was delivered again.
    """

    topic: Topic
    name: str
    start: int
    subscription_type: str | None = None
    consumers: list[ConsumerSocket] = field(default_factory=list)
    next_index: int = -1
    pending: set[int] = field(default_factory=set)
    held: dict[int, ConsumerSocket] = field(default_factory=dict)
    acked: set[int] = field(default_factory=set)
    redeliveries: dict[int, int] = field(default_factory=dict)
    _turn: int = 0
    _dispatching: bool = False
    _again: bool = False

    def __post_init__(self) -> None:
        self.next_index = self.start

    @property
    def backlog(self) -> int:
        """Messages from the subscription's start not acknowledged yet."""
        return len(self.topic.entries) - self.start - len(self.acked)

    def refusal(self, subscription_type: str) -> str | None:
        """Why a consumer of that type cannot join now, as Pulsar's ConsumerBusy says it."""
        if not self.consumers:
            return None
        if self.subscription_type == "Exclusive":
            return "Exclusive consumer is already connected"
        if self.subscription_type != subscription_type:
            return "Subscription is of different type"
        return None

    def join(self, consumer: ConsumerSocket, subscription_type: str) -> None:
        """Add a consumer (its type checked with :meth:`refusal` first)."""
        self.subscription_type = subscription_type
        self.consumers.append(consumer)

    def leave(self, consumer: ConsumerSocket) -> None:
        """Remove a consumer; what it held goes back, counted as redelivered."""
        if consumer in self.consumers:
            self.consumers.remove(consumer)
        for index, holder in list(self.held.items()):
            if holder is consumer:
                self.release(index)
        if not self.consumers:
            self.subscription_type = None

    def skip(self, index: int) -> None:
        """Acknowledge a message nobody could take (non-persistent topics drop those)."""
        if index == self.next_index:
            self.next_index += 1
        self.pending.discard(index)
        self.acked.add(index)

    def ack(self, index: int) -> ConsumerSocket | None:
        """Acknowledge a message; returns the consumer that held it, if one did."""
        if index < self.start or index in self.acked:
            return None
        self.acked.add(index)
        self.pending.discard(index)
        self.redeliveries.pop(index, None)
        if index >= self.next_index:  # acked before it was ever delivered
            self.pending.update(range(self.next_index, index))
            self.next_index = index + 1
        return self.held.pop(index, None)

    def release(self, index: int) -> None:
        """A held message goes back to be delivered again, its redelivery count raised."""
        if self.held.pop(index, None) is None or index in self.acked:
            return
        self.redeliveries[index] = self.redeliveries.get(index, 0) + 1
        self.pending.add(index)

    def dispatch(self) -> None:
        """Deliver what is pending to consumers with credit, in topic order.

        A dispatch asked for while one runs (a delivery that cut its socket) runs after it.
        """
        if self._dispatching:
            self._again = True
            return
        self._dispatching = True
        try:
            self._again = True
            while self._again:
                self._again = False
                self._dispatch_once()
        finally:
            self._dispatching = False

    def _dispatch_once(self) -> None:
        if not self.consumers:
            return
        starved: set[int] = set()
        for index in sorted(self.pending):
            if index not in self.pending:
                continue
            if not self._offer(index, starved):
                return
        entries = self.topic.entries
        while self.next_index < len(entries):
            index = self.next_index
            self.next_index += 1
            if index in self.acked:
                continue
            self.pending.add(index)
            if not self._offer(index, starved):
                return

    def _offer(self, index: int, starved: set[int]) -> bool:
        """Deliver one pending message if its consumer has credit; False: stop dispatching."""
        entry = self.topic.entries[index]
        consumer = self._choose(entry)
        if consumer is None or not consumer.has_credit():
            if self.subscription_type != "Key_Shared" or consumer is None:
                return False
            starved.add(id(consumer))  # other keys may still go to other consumers
            return len(starved) < len(self.consumers)
        self.pending.discard(index)
        self.held[index] = consumer
        consumer.deliver(self, entry, self.redeliveries.get(index, 0))
        return True

    def _choose(self, entry: Entry) -> ConsumerSocket | None:
        consumers = self.consumers
        kind = self.subscription_type
        if kind == "Exclusive":
            return consumers[0]
        if kind == "Failover":
            return min(consumers, key=lambda c: (c.priority_level, c.consumer_name or "", c.seq))
        if kind == "Key_Shared":
            key = (entry.key or "NONE_KEY").encode("utf-8")
            slot = zlib.crc32(key) % _HASH_RANGE
            return consumers[slot * len(consumers) // _HASH_RANGE]
        levels = [c.priority_level for c in consumers if c.has_credit()]
        if not levels:
            return None
        best, count = min(levels), len(consumers)
        for step in range(count):  # round-robin among the highest priority with credit
            consumer = consumers[(self._turn + step) % count]
            if consumer.priority_level == best and consumer.has_credit():
                self._turn = (self._turn + step + 1) % count
                return consumer
        return None
