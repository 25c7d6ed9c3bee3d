"""The consumer endpoint, broker side: credit, acks, nacks, ack timeout and dead letters.

Credit follows Pulsar's WebSocket service: in pull mode (``pullMode=true``) only permits let
messages out; otherwise the window (``receiverQueueSize``, at most 1000) bounds what is
delivered and not yet acked or nacked. A nack frees the window at once and sends the message
back after ``negativeAckRedeliveryDelay``; an unacked message goes back after
``ackTimeoutMillis``; both raise its redelivery count, and with a dead-letter policy a message
already delivered ``maxRedeliverCount`` times again goes to the dead-letter topic instead (then
is acked), as Pulsar's client does. What the socket holds when it goes away is delivered
again, counted as a redelivery. Delays run on the broker's scheduler.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reactivex import abc

from rxstargate._service_rules.jackson import ACK, END_OF_TOPIC, PERMIT, UNSUBSCRIBE
from rxstargate._service_rules.params import ConsumerParams
from rxstargate._service_rules.paths import Endpoint, Route
from rxstargate.models import MessageId
from rxstargate.testing._sockets import Socket
from rxstargate.testing._topics import Entry, Subscription
from rxstargate.testing._transport import MemoryTransport
from rxstargate.testing._wire import (
    CommandError,
    end_of_topic_answer,
    parse_command,
)

if TYPE_CHECKING:
    from rxstargate.testing._broker import Broker

__all__ = ["ConsumerSocket"]


@dataclass(slots=True)
class _Delivery:
    """A message the socket holds: when it went out, and whether it was nacked since."""

    subscription: Subscription
    index: int
    count: int
    at: float
    nacked: bool = False


_Key = tuple[int, int]  # (id of the subscription, index)


class ConsumerSocket(Socket):
    """A consumer on one subscription (v2) or on the same subscription of several topics (v3)."""

    kind = "consumer"
    incoming = "settle"

    def __init__(
        self,
        broker: Broker,
        transport: MemoryTransport,
        route: Route,
        params: ConsumerParams,
        seq: int,
        dead_letter_base: str | None,
    ) -> None:
        super().__init__(broker, transport, route)
        self.params = params
        self.seq = seq
        self.priority_level = params.priority_level
        self.consumer_name = params.consumer_name
        self.subscriptions: list[Subscription] = []
        self._multi = route.endpoint is Endpoint.MULTI_TOPIC_CONSUMER
        self._dead_letter_base = dead_letter_base
        self._permits = 0
        self._in_window = 0
        self._held: dict[_Key, _Delivery] = {}
        self._nacks: deque[tuple[float, _Key]] = deque()
        self._nack_timer: abc.DisposableBase | None = None
        self._ack_timer: abc.DisposableBase | None = None

    @property
    def topics(self) -> tuple[str, ...]:
        """The topics it consumes (those a pattern matched, for a v3 pattern consumer)."""
        return tuple(s.topic.name for s in self.subscriptions) or super().topics

    @property
    def permits(self) -> int | None:
        """The pull-mode credit left, or None in push mode."""
        return self._permits if self.params.pull_mode else None

    @property
    def unacked(self) -> int:
        """Messages held delivered and unsettled (nacked ones until they go back)."""
        return len(self._held)

    def attach(self, subscription: Subscription) -> None:
        """Join one subscription (its refusal checked first)."""
        subscription.join(self, self.params.subscription_type)
        self.subscriptions.append(subscription)

    # -- credit and delivery ------------------------------------------------------------------

    def has_credit(self) -> bool:
        """Whether one more message may go out now."""
        if self.gone:
            return False
        if self.params.pull_mode:
            return self._permits > 0
        return self._in_window < self.params.receiver_queue_size

    def deliver(self, subscription: Subscription, entry: Entry, count: int) -> None:
        """Hand one message to the client (its subscription marked it held by this socket)."""
        if self.params.pull_mode:
            self._permits -= 1
        else:
            self._in_window += 1
        key = (id(subscription), entry.index)
        self._held[key] = _Delivery(subscription, entry.index, count, self.broker.now())
        topic = subscription.topic.name if self._multi else None
        if self.write(entry.frame(count, topic), "message"):
            self._arm_ack_timeout()

    def dispatch(self) -> None:
        for subscription in list(self.subscriptions):
            subscription.dispatch()

    # -- commands -----------------------------------------------------------------------------

    def handle(self, text: str) -> None:
        try:
            command = parse_command(text)
            if command.kind == PERMIT:
                if self.params.pull_mode:  # permits are ignored in push mode
                    self._permits += command.permits
                    self.dispatch()
            elif command.kind == END_OF_TOPIC:
                self.write(end_of_topic_answer(False))  # no topic is ever terminated
            elif command.kind == UNSUBSCRIBE:
                self._unsubscribe()
            else:
                self._settle(command.message_id, command.kind == ACK)
        except CommandError:
            self.close(None)  # Pulsar's error 3: a close frame without status

    def _locate(self, wire: str) -> tuple[Subscription, int] | None:
        try:
            message_id = MessageId(wire)
            ledger = message_id.fields.ledger_id
        except ValueError as exc:
            raise CommandError(f"cannot decode messageId: {exc}") from None
        for subscription in self.subscriptions:
            if subscription.topic.ledger == ledger:
                index = subscription.topic.index_of(message_id)
                return None if index is None else (subscription, index)
        return None  # not a message of these topics: Pulsar acks it on the broker, to no effect

    def _settle(self, wire: str, acked: bool) -> None:
        found = self._locate(wire)
        if found is None:
            return
        subscription, index = found
        if acked:
            self.broker.acknowledge(subscription, index)
            subscription.dispatch()
            return
        delivery = self._held.get((id(subscription), index))
        if delivery is None or delivery.nacked:
            return
        delivery.nacked = True
        self._free_window()
        due = self.broker.now() + self.params.negative_ack_redelivery_delay / 1000
        self._nacks.append((due, (id(subscription), index)))
        self._arm_nacks()
        subscription.dispatch()

    def forget(self, subscription: Subscription, index: int) -> None:
        """A held message was acked (here or on another socket): it is no longer held."""
        delivery = self._held.pop((id(subscription), index), None)
        if delivery is not None and not delivery.nacked:
            self._free_window()

    def _free_window(self) -> None:
        if not self.params.pull_mode and self._in_window > 0:
            self._in_window -= 1

    def _unsubscribe(self) -> None:
        if any(len(s.consumers) > 1 for s in self.subscriptions):
            raise CommandError("unsubscribe failed: other consumers are connected")
        for subscription in self.subscriptions:
            subscription.topic.subscriptions.pop(subscription.name, None)
            subscription.consumers.clear()
        self.subscriptions = []
        self._held.clear()

    # -- redelivery ---------------------------------------------------------------------------

    def _arm_nacks(self) -> None:
        if self._nack_timer is not None or not self._nacks or self.gone:
            return
        delay = self._nacks[0][0] - self.broker.now()
        if delay <= 0:
            self._nacks_due()  # a delay of 0: at once, whatever the scheduler
        else:
            self._nack_timer = self.broker.schedule(delay, self._nacks_due)

    def _nacks_due(self) -> None:
        self._nack_timer = None
        now = self.broker.now()
        touched: set[int] = set()
        while self._nacks and self._nacks[0][0] <= now and not self.gone:
            _, key = self._nacks.popleft()
            delivery = self._held.get(key)
            if delivery is not None and delivery.nacked:
                self._redeliver(key, delivery)
                touched.add(id(delivery.subscription))
        self._arm_nacks()
        self._dispatch_touched(touched)

    def _arm_ack_timeout(self) -> None:
        timeout = self.params.ack_timeout_millis / 1000
        if not timeout or self._ack_timer is not None or self.gone:
            return
        oldest = next((d for d in self._held.values() if not d.nacked), None)
        if oldest is not None:
            delay = oldest.at + timeout - self.broker.now()
            if delay <= 0:
                self._ack_timeouts_due()
            else:
                self._ack_timer = self.broker.schedule(delay, self._ack_timeouts_due)

    def _ack_timeouts_due(self) -> None:
        self._ack_timer = None
        deadline = self.broker.now() - self.params.ack_timeout_millis / 1000
        due = [
            (key, d) for key, d in self._held.items() if not d.nacked and d.at <= deadline + 1e-9
        ]
        for key, delivery in due:
            if self.gone:
                return
            self._free_window()
            self._redeliver(key, delivery)
        self._arm_ack_timeout()
        self._dispatch_touched({id(d.subscription) for _, d in due})

    def _redeliver(self, key: _Key, delivery: _Delivery) -> None:
        """Send a held message back to its subscription, or to the dead-letter topic."""
        del self._held[key]
        limit = self.params.max_redeliver_count
        if limit is not None and delivery.count >= limit:
            self.broker.dead_letter(
                delivery.subscription, delivery.index, self._dead_letter_topic(delivery)
            )
        else:
            delivery.subscription.release(delivery.index)

    def _dead_letter_topic(self, delivery: _Delivery) -> str:
        if self.params.dead_letter_topic is not None:
            return self.params.dead_letter_topic
        base = self._dead_letter_base or delivery.subscription.topic.name
        return f"{base}-{delivery.subscription.name}-DLQ"

    def _dispatch_touched(self, touched: set[int]) -> None:
        for subscription in list(self.subscriptions):
            if id(subscription) in touched:
                subscription.dispatch()

    def ended(self) -> None:
        for timer in (self._nack_timer, self._ack_timer):
            if timer is not None:
                timer.dispose()
        self._nacks.clear()
        self._held.clear()
        subscriptions, self.subscriptions = self.subscriptions, []
        for subscription in subscriptions:
            subscription.leave(self)
        for subscription in subscriptions:
            subscription.dispatch()
