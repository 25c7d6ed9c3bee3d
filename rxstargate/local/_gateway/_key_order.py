"""Per-key order across the gateway's sockets on one Key_Shared subscription, as Pulsar keeps it.

The gateway subscribes Key_Shared with out-of-order delivery allowed (see ``_opening``), so
pulsar-lite moves keys between consumers the moment one joins or leaves: a consumer that joins
gets newer messages of a key while another still holds older ones unacknowledged, and what a
departed consumer held comes back after newer messages of its keys. Pulsar's own dispatcher
holds a joining consumer's keys back until what was delivered before it joined is acknowledged,
and replays a departed consumer's messages before newer ones of the same keys.

Every socket of a subscription is the gateway's, so it keeps that order here, holding a message
back until:

* no other socket holds an unsettled message of its key, nor one held back;
* no older message of its key that a departed socket held is still due back from the broker
  (while they keep coming: once none came for ``DUE_BACK_SECONDS``, the rest are given up
  on, with a warning in the log, as a message dead-lettered on its way back never comes);
* if it is the first delivery of a message of a key a departed socket held, the broker has
  sent back all it had sent that socket: those the gateway knew of came, and no other
  message of those keys came back for ``REPLAY_QUIET_SECONDS``. A closing socket takes in
  its broker-side queue until nothing comes for a moment, but under load the broker may be
  sending it more then, which the gateway never sees; pulsar-lite sends those back too
  (redelivered, after the ones the gateway knew of) among newer messages of their keys;
* its socket, if it joined while others were receiving, has seen each of them take in what
  the broker had sent them before it joined (their broker-side receiver queues): each has
  found its queue empty, or received a newer message (while they keep receiving: once none of
  them received anything for ``JOIN_WAIT_SECONDS``, it goes ahead and says so in the log).

Messages of one topic (or partition) compare by position; a key is a topic's ordering key (else
its partition key). Nacked messages come back when the broker sends them, after newer ones of
their key, as in Pulsar.

A held back message takes no room in its socket's window: the socket goes on taking messages
in from the broker (among them those it waits for, which the broker could not send it if its
window were full of messages that wait for them). It goes out on the socket's own receive
thread, before any newer message, once its turn came and the window has room. Each socket's
receive thread calls here holding its session's lock; this never takes a session's lock.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("rxstargate.gateway")

DUE_BACK_SECONDS = 10.0
JOIN_WAIT_SECONDS = 10.0
REPLAY_QUIET_SECONDS = 0.5

Key = tuple[str, str]
Position = tuple[int, int, int]


def key_of(message: Any) -> Key:
    """The message's topic and the key Key_Shared dispatches it by."""
    return message.topic_name(), message.ordering_key() or message.partition_key()


def position_of(message: Any) -> Position:
    """Where the message sits in its topic (or partition)."""
    mid = message.message_id()
    return mid.ledger_id(), mid.entry_id(), mid.batch_index()


def _first(entry: tuple[Position, Any]) -> Position:
    return entry[0]


class _Member:
    """One socket's part: what it holds per key, what waits, whom it waits for."""

    def __init__(self, waits_for: set[_Member], now: float) -> None:
        self.held: dict[Key, int] = {}
        self.waiting: dict[Key, list[tuple[Position, Any]]] = {}
        self.waits_for = waits_for  # sockets whose queues may still hold pre-join messages
        self.progress = now  # when a socket it waits for last received something
        self.first_fresh: dict[str, Position] = {}
        self.last_fresh: dict[str, Position] = {}

    def drained_for(self, joiner: _Member) -> bool:
        """Whether this socket received a message newer than any the joiner received."""
        return any(
            self.last_fresh.get(topic, (-1, -1, -1)) > position
            for topic, position in joiner.first_fresh.items()
        )


class KeyOrder:
    """The order keeper of one Key_Shared subscription, shared by its sockets (thread-safe).

    Sockets are named by any object that stays the same (the session).

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
        self._due_back: dict[Key, set[Position]] = {}
        self._due_progress = 0.0  # when a message due back last came (or was added)
        self._replaying: set[Key] = set()  # keys of departed sockets the broker sends back
        self._returned: set[tuple[Key, Position]] = set()  # what came back of those keys
        self._replay_progress = 0.0  # when one last came back (or a socket left)
        self._joining = 0
        self._next_expiry = 0.0

    # --- what sockets tell it -----------------------------------------------------------------
    def join(self, socket: object) -> None:
        """A socket joins (before it receives anything)."""
        with self._lock:
            others = set(self._members.values())
            self._members[id(socket)] = _Member(others, self._clock())
            if others:
                self._joining += 1

    def arrive(self, socket: object, message: Any) -> bool:
        """A message came for a socket: True to deliver it now, False if it is held back."""
        key, position = key_of(message), position_of(message)
        fresh = message.redelivery_count() == 0
        with self._lock:
            member = self._members.get(id(socket))
            if member is None:  # the socket left: the broker sends the message again
                self._due_back.setdefault(key, set()).add(position)
                self._replaying.add(key)
                self._due_progress = self._replay_progress = self._clock()
                return False
            if self._joining:
                self._note_progress(member)
            if fresh:
                self._note_fresh(member, key[0], position)
            due = self._came_back(key, position)
            if key in self._replaying and (due or not fresh):
                self._note_returned(key, position)
            if self._replaying:
                self._end_replay()
            waiting = member.waiting.get(key)
            ahead = waiting is None or position < waiting[0][0]  # of its own that wait
            if ahead and self._may_deliver(member, key, position, fresh):
                member.held[key] = member.held.get(key, 0) + 1
                self._holder[key] = member
                return True
            bisect.insort(member.waiting.setdefault(key, []), (position, message), key=_first)
            return False

    def ready(self, socket: object, room: int) -> list[Any]:
        """Held back messages whose turn came, at most ``room``, in order, now held by the
        socket, which delivers them before anything newer."""
        member = self._members.get(id(socket))
        if member is None or not member.waiting or room <= 0:
            return []  # the common case, without the lock
        with self._lock:
            self._expire_overdue()
            if self._replaying:
                self._end_replay()
            if member.waits_for or self._members.get(id(socket)) is not member:
                return []
            ready: list[Any] = []
            for key in list(member.waiting):
                messages = self._releasable(member, key)[: room - len(ready)]
                if not messages:
                    continue
                member.waiting[key] = member.waiting[key][len(messages) :]
                if not member.waiting[key]:
                    del member.waiting[key]
                member.held[key] = member.held.get(key, 0) + len(messages)
                self._holder[key] = member
                ready += messages
                if len(ready) >= room:
                    break
            return ready

    def settled(self, socket: object, message: Any) -> None:
        """A socket acked or nacked a message it held (or did not deliver one after all)."""
        key = key_of(message)
        with self._lock:
            member = self._members.get(id(socket))
            if member is None or not member.held.get(key):
                return
            member.held[key] -= 1
            if member.held[key]:
                return
            del member.held[key]
            if self._holder.get(key) is member:
                del self._holder[key]

    def idle(self, socket: object) -> None:
        """A socket with room in its window found its broker-side queue empty."""
        if not self._joining:
            return
        with self._lock:
            member = self._members.get(id(socket))
            if member is not None:
                self._stop_waiting_for(member, lambda _: True)

    def leave(self, socket: object, unsettled: list[Any]) -> None:
        """A socket goes, before its broker consumer closes: what it held comes back first."""
        with self._lock:
            member = self._members.pop(id(socket), None)
            if member is None:
                return
            if member.waits_for:
                self._joining -= 1
            back = list(unsettled) + [m for w in member.waiting.values() for _, m in w]
            for message in back:
                self._due_back.setdefault(key_of(message), set()).add(position_of(message))
                self._replaying.add(key_of(message))
            self._due_progress = self._replay_progress = self._clock()
            for key in member.held:
                if self._holder.get(key) is member:
                    del self._holder[key]
            self._stop_waiting_for(member, lambda _: True)
        if back:
            log.info("%s: %d messages of a socket that left go first", self._name, len(back))

    # --- rules (under the lock) ---------------------------------------------------------------
    def _note_fresh(self, member: _Member, topic: str, position: Position) -> None:
        """Record a first delivery: joining sockets may stop waiting."""
        member.first_fresh.setdefault(topic, position)
        member.last_fresh[topic] = position
        if not self._joining:
            return
        if member.waits_for:  # its own first message may show that others took theirs in
            member.waits_for = {o for o in member.waits_for if not o.drained_for(member)}
            if not member.waits_for:
                self._joining -= 1
        self._stop_waiting_for(member, member.drained_for)

    def _note_progress(self, member: _Member) -> None:
        """Sockets that wait for ``member`` to take in its queue see it at work."""
        now = self._clock()
        for joiner in self._members.values():
            if member in joiner.waits_for:
                joiner.progress = now

    def _stop_waiting_for(self, member: _Member, drained: Callable[[_Member], bool]) -> None:
        """Joining sockets stop waiting for ``member`` where ``drained`` says so."""
        for joiner in self._members.values():
            if member in joiner.waits_for and drained(joiner):
                joiner.waits_for.discard(member)
                if not joiner.waits_for:
                    self._joining -= 1

    def _came_back(self, key: Key, position: Position) -> bool:
        """A message due back from a departed socket may have come: whether it did."""
        due = self._due_back.get(key)
        if due is None or position not in due:
            return False
        due.discard(position)
        if not due:
            del self._due_back[key]
        self._due_progress = self._clock()
        return True

    def _note_returned(self, key: Key, position: Position) -> None:
        """A message of a departed socket's key came back (a nacked one coming back again
        and again is no sign that the broker is still sending that socket's messages)."""
        if (key, position) not in self._returned:
            self._returned.add((key, position))
            self._replay_progress = self._clock()

    def _end_replay(self) -> None:
        """Departed sockets' keys go on once the broker sent back all it had sent them."""
        if self._due_back or self._clock() - self._replay_progress < REPLAY_QUIET_SECONDS:
            return
        self._replaying.clear()
        self._returned.clear()

    def _may_deliver(self, member: _Member, key: Key, position: Position, fresh: bool) -> bool:
        if member.waits_for or (fresh and key in self._replaying):
            return False
        holder = self._holder.get(key)
        if holder is not None and holder is not member:
            return False
        limit = self._limit(member, key)
        return limit is None or position < limit

    def _limit(self, member: _Member, key: Key) -> Position | None:
        """The oldest message of ``key`` due back, or waiting on another socket."""
        due = self._due_back.get(key)
        limits = [min(due)] if due else []
        limits += [
            other.waiting[key][0][0]
            for other in self._members.values()
            if other is not member and key in other.waiting
        ]
        return min(limits) if limits else None

    def _releasable(self, member: _Member, key: Key) -> list[Any]:
        """The waiting messages of ``key`` that ``member`` may deliver now, in order."""
        waiting = member.waiting[key]
        first_position, first = waiting[0]
        if not self._may_deliver(member, key, first_position, first.redelivery_count() == 0):
            return []
        limit = self._limit(member, key)
        replaying = key in self._replaying
        releasable = []
        for position, message in waiting:
            if limit is not None and position >= limit:
                break
            if replaying and message.redelivery_count() == 0:
                break  # redelivered ones, older than any first delivery of the key, go first
            releasable.append(message)
        return releasable

    def _expire_overdue(self) -> None:
        """Stop waiting for what is overdue (a message that never came back, a stuck queue)."""
        now = self._clock()
        if now < self._next_expiry:
            return
        self._next_expiry = now + 0.5
        overdue = 0
        if self._due_back and now - self._due_progress >= DUE_BACK_SECONDS:
            overdue = sum(len(due) for due in self._due_back.values())
            self._due_back.clear()
        stuck = [
            m
            for m in self._members.values()
            if m.waits_for and now - m.progress >= JOIN_WAIT_SECONDS
        ]
        for member in stuck:
            member.waits_for.clear()
            self._joining -= 1
        if overdue or stuck:
            log.warning(
                "%s: stopped holding keys back: %d messages of sockets that left did not come "
                "back (none came for %.0f s); %d joining sockets stopped waiting for others that "
                "took nothing in for %.0f s",
                self._name,
                overdue,
                DUE_BACK_SECONDS,
                len(stuck),
                JOIN_WAIT_SECONDS,
            )


def take_queued(consumer: Any, limit: int = 5000, wait_millis: int = 200) -> list[Any]:
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
