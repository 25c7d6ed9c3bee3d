"""Per-key order across the gateway's sockets on one Key_Shared subscription, as Pulsar keeps it.

The gateway subscribes Key_Shared with out-of-order delivery allowed (see ``_opening``), so
pulsar-lite moves keys between consumers the moment one joins or leaves: a consumer that joins
gets newer messages of a key while another still holds older ones unacknowledged, and what a
departed consumer held comes back after newer messages of its keys. Pulsar's own dispatcher
holds a joining consumer's keys back until what was delivered before it joined is acknowledged,
and replays a departed consumer's messages before newer ones of the same keys.

Every socket of a subscription is the gateway's, so it keeps that order here, holding a message
back in its socket's window (where it takes a slot as if delivered) until:

* no other socket holds an unsettled message of its key, nor one held back;
* no older message of its key that a departed socket held is still due back from the broker
  (each is waited for at most ``DUE_BACK_SECONDS``: a message dead-lettered on its way back
  never comes);
* its socket, if it joined while others were receiving, has seen each of them take in what
  the broker had sent them before it joined (their broker-side receiver queues): each has
  found its queue empty, or received a newer message (at most ``JOIN_WAIT_SECONDS``, then it
  goes ahead and says so in the log).

Messages of one topic (or partition) compare by position; a key is a topic's ordering key (else
its partition key). Nacked messages come back when the broker sends them, after newer ones of
their key, as in Pulsar.

Releasing held back messages runs on the event loop (the thread of acks and closes); arrivals
come from each socket's receive thread, which holds its session's lock while it calls here, so
this never takes a session's lock while it holds its own.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("rxstargate.gateway")

DUE_BACK_SECONDS = 10.0
JOIN_WAIT_SECONDS = 10.0

Key = tuple[str, str]
Position = tuple[int, int, int]


class HeldBackReceiver(Protocol):
    """A socket of the subscription, as seen from here."""

    def deliver_held_back(self, messages: list[Any]) -> int:
        """Deliver messages that were held back, in order; returns how many it now holds."""
        ...


def key_of(message: Any) -> Key:
    """The message's topic and the key Key_Shared dispatches it by."""
    return message.topic_name(), message.ordering_key() or message.partition_key()


def position_of(message: Any) -> Position:
    """Where the message sits in its topic (or partition)."""
    mid = message.message_id()
    return mid.ledger_id(), mid.entry_id(), mid.batch_index()


class _Member:
    """One socket's part: what it holds per key, what waits, whom it waits for."""

    def __init__(self, receiver: HeldBackReceiver, waits_for: set[_Member], now: float) -> None:
        self.receiver = receiver
        self.held: dict[Key, int] = {}
        self.waiting: dict[Key, list[tuple[Position, Any]]] = {}
        self.waits_for = waits_for  # sockets whose queues may still hold pre-join messages
        self.joined_at = now
        self.first_fresh: dict[str, Position] = {}
        self.last_fresh: dict[str, Position] = {}

    def drained_for(self, joiner: _Member) -> bool:
        """Whether this socket received a message newer than any the joiner received."""
        return any(
            self.last_fresh.get(topic, (-1, -1, -1)) > position
            for topic, position in joiner.first_fresh.items()
        )


class KeyOrder:
    """The order keeper of one Key_Shared subscription, shared by its sockets.

    Args:
        name: the subscription, for logs.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._members: dict[int, _Member] = {}
        self._holder: dict[Key, _Member] = {}
        self._due_back: dict[Key, dict[Position, float]] = {}
        self._joining = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release_scheduled = False

    # --- what sockets tell it -----------------------------------------------------------------
    def join(self, receiver: HeldBackReceiver) -> None:
        """A socket joins (on the event loop, before it receives)."""
        self._loop = asyncio.get_running_loop()
        with self._lock:
            others = set(self._members.values())
            member = _Member(receiver, others, self._clock())
            self._members[id(receiver)] = member
            if others:
                self._joining += 1
        if others:
            self._loop.call_later(JOIN_WAIT_SECONDS, self._expire)

    def arrive(self, receiver: HeldBackReceiver, message: Any) -> bool:
        """A message came for a socket: True to deliver it now, False if it is held back."""
        key, position = key_of(message), position_of(message)
        fresh = message.redelivery_count() == 0
        with self._lock:
            member = self._members.get(id(receiver))
            if member is None:  # the socket left: the broker sends the message again
                self._due_back.setdefault(key, {})[position] = self._clock() + DUE_BACK_SECONDS
                return False
            if fresh and self._note_fresh(member, key[0], position):
                self._schedule_release()
            if self._came_back(key, position):
                self._schedule_release()
            if self._may_deliver(member, key, position) and key not in member.waiting:
                member.held[key] = member.held.get(key, 0) + 1
                self._holder[key] = member
                return True
            bisect.insort(member.waiting.setdefault(key, []), (position, message))
            return False

    def settled(self, receiver: HeldBackReceiver, message: Any) -> None:
        """A socket acked or nacked a message it held (or will not deliver one after all)."""
        key = key_of(message)
        with self._lock:
            member = self._members.get(id(receiver))
            if member is None or not member.held.get(key):
                return
            member.held[key] -= 1
            if member.held[key]:
                return
            del member.held[key]
            if self._holder.get(key) is member:
                del self._holder[key]
            if any(key in other.waiting for other in self._members.values()):
                self._schedule_release()

    def idle(self, receiver: HeldBackReceiver) -> None:
        """A socket with room in its window found its broker-side queue empty."""
        if not self._joining:
            return
        with self._lock:
            member = self._members.get(id(receiver))
            if member is not None and self._stop_waiting_for(member, lambda _: True):
                self._schedule_release()

    def leave(self, receiver: HeldBackReceiver, unsettled: list[Any]) -> None:
        """A socket goes, before its broker consumer closes: what it held comes back first."""
        due = self._clock() + DUE_BACK_SECONDS
        with self._lock:
            member = self._members.pop(id(receiver), None)
            if member is None:
                return
            if member.waits_for:
                self._joining -= 1
            back = list(unsettled) + [m for w in member.waiting.values() for _, m in w]
            for message in back:
                self._due_back.setdefault(key_of(message), {})[position_of(message)] = due
            for key in member.held:
                if self._holder.get(key) is member:
                    del self._holder[key]
            self._stop_waiting_for(member, lambda _: True)
        if back:
            log.info("%s: %d messages of a socket that left go first", self._name, len(back))
        self._schedule_release()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.call_later, DUE_BACK_SECONDS, self._expire)

    # --- rules (under the lock) ---------------------------------------------------------------
    def _note_fresh(self, member: _Member, topic: str, position: Position) -> bool:
        """Record a first delivery; True if some joining socket stopped waiting."""
        member.first_fresh.setdefault(topic, position)
        member.last_fresh[topic] = position
        if not self._joining:
            return False
        done = False
        if member.waits_for:  # its own first message may show that others took theirs in
            member.waits_for = {o for o in member.waits_for if not o.drained_for(member)}
            if not member.waits_for:
                self._joining -= 1
                done = True
        return self._stop_waiting_for(member, member.drained_for) or done

    def _stop_waiting_for(self, member: _Member, drained: Callable[[_Member], bool]) -> bool:
        """Joining sockets stop waiting for ``member`` where ``drained``; True if one is done."""
        done = False
        for joiner in self._members.values():
            if member in joiner.waits_for and drained(joiner):
                joiner.waits_for.discard(member)
                if not joiner.waits_for:
                    self._joining -= 1
                    done = True
        return done

    def _came_back(self, key: Key, position: Position) -> bool:
        """Whether a message due back from a departed socket just came."""
        due = self._due_back.get(key)
        if due is None or due.pop(position, None) is None:
            return False
        if not due:
            del self._due_back[key]
        return True

    def _may_deliver(self, member: _Member, key: Key, position: Position) -> bool:
        if member.waits_for:
            return False
        holder = self._holder.get(key)
        if holder is not None and holder is not member:
            return False
        due = self._due_back.get(key)
        if due and min(due) < position:
            return False
        return not any(
            key in other.waiting and other.waiting[key][0][0] < position
            for other in self._members.values()
            if other is not member
        )

    # --- releasing (on the event loop) --------------------------------------------------------
    def _schedule_release(self) -> None:
        if self._release_scheduled or self._loop is None:
            return
        self._release_scheduled = True
        self._loop.call_soon_threadsafe(self._release)

    def _release(self) -> None:
        """Deliver every held back message whose turn came, until none does."""
        with self._lock:
            self._release_scheduled = False
        while self._release_once():
            pass

    def _release_once(self) -> bool:
        with self._lock:
            batches = [
                (member, key, self._releasable(member, key))
                for member in self._members.values()
                for key in list(member.waiting)
            ]
            batches = [batch for batch in batches if batch[2]]
            for member, key, messages in batches:  # taken before they go out: see _released
                member.held[key] = member.held.get(key, 0) + len(messages)
                self._holder[key] = member
        for member, key, messages in batches:
            held = member.receiver.deliver_held_back(messages)
            with self._lock:
                self._released(member, key, messages, held)
        return bool(batches)

    def _releasable(self, member: _Member, key: Key) -> list[Any]:
        """The waiting messages of ``key`` that ``member`` may deliver now, in order."""
        waiting = member.waiting[key]
        if not self._may_deliver(member, key, waiting[0][0]):
            return []
        due = self._due_back.get(key)
        limit = min(due) if due else None
        return [m for position, m in waiting if limit is None or position < limit]

    def _released(self, member: _Member, key: Key, messages: list[Any], held: int) -> None:
        """Messages went out; the socket holds ``held`` of them (a copy it had is not new).

        They stayed in ``waiting`` until now so that newer arrivals of their key wait behind
        them, and counted as held (so that no other socket took their key) since they left it.
        """
        gone = {id(m) for m in messages}
        waiting = [entry for entry in member.waiting.get(key, []) if id(entry[1]) not in gone]
        if waiting:
            member.waiting[key] = waiting
        else:
            member.waiting.pop(key, None)
        count = member.held.get(key, 0) - (len(messages) - held)
        if count > 0:
            member.held[key] = count
            return
        member.held.pop(key, None)
        if self._holder.get(key) is member:
            del self._holder[key]
            self._schedule_release()

    def _expire(self) -> None:
        """Stop waiting for what is overdue (a message that never came back, a stuck queue)."""
        now = self._clock()
        with self._lock:
            overdue = 0
            for key in list(self._due_back):
                due = self._due_back[key]
                for position in [p for p, deadline in due.items() if deadline <= now]:
                    del due[position]
                    overdue += 1
                if not due:
                    del self._due_back[key]
            stuck = [
                m
                for m in self._members.values()
                if m.waits_for and now - m.joined_at >= JOIN_WAIT_SECONDS - 0.01
            ]
            for member in stuck:
                member.waits_for.clear()
                self._joining -= 1
        if overdue or stuck:
            log.warning(
                "%s: stopped holding keys back: %d messages of sockets that left did not come "
                "back within %.0f s, %d joining sockets waited %.0f s for the others",
                self._name,
                overdue,
                DUE_BACK_SECONDS,
                len(stuck),
                JOIN_WAIT_SECONDS,
            )
            self._release()


def take_queued(consumer: Any, limit: int = 1000, wait_millis: int = 50) -> list[Any]:
    """What a closing broker consumer has received but not handed out (it goes back to the
    broker on close): until nothing came for ``wait_millis``, at most ``limit``.

    Taking messages frees room that the broker client at once asks the broker to fill; the wait
    catches what is on its way.
    """
    queued: list[Any] = []
    while len(queued) < limit:
        try:
            queued.append(consumer.receive(wait_millis))
        except Exception:  # its Timeout once nothing comes, or the consumer is gone
            break
    return queued


class KeyOrders:
    """The order keepers of the gateway's Key_Shared subscriptions (on the event loop)."""

    def __init__(self) -> None:
        self._orders: dict[Any, tuple[KeyOrder, int]] = {}

    def acquire(self, subscription: Any, name: str) -> KeyOrder:
        """The keeper of ``subscription`` (any hashable identity); each needs a release."""
        order, count = self._orders.get(subscription, (None, 0))
        if order is None:
            order = KeyOrder(name)
        self._orders[subscription] = (order, count + 1)
        return order

    def release(self, subscription: Any) -> None:
        """Give one back; the last one forgets the keeper."""
        order, count = self._orders.get(subscription, (None, 0))
        if order is None:
            return
        if count > 1:
            self._orders[subscription] = (order, count - 1)
        else:
            del self._orders[subscription]
