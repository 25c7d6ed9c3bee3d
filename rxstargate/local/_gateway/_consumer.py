"""The consumer endpoint: deliveries bounded by window or permits, acks, nacks and commands."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from rxstargate._service_rules.commands import (
    Command,
    CommandError,
    end_of_topic_answer,
    parse_command,
)
from rxstargate._service_rules.jackson import ACK, END_OF_TOPIC, PERMIT, UNSUBSCRIBE
from rxstargate._service_rules.params import ConsumerParams
from rxstargate.local._gateway._dedup import ConsumerLedger
from rxstargate.local._gateway._key_order import KeyOrder, take_queued
from rxstargate.local._gateway._nudge import NudgeSchedule
from rxstargate.local._gateway._receiving import ReceivingSession, message_frame
from rxstargate.local._gateway._redelivery import (
    BROKER_NACK_DELAY_MS,
    BROKER_REDELIVERS,
    DelayedNacks,
    Nacked,
)
from rxstargate.local._gateway._threadstate import keep_thread_state

log = logging.getLogger("rxstargate.gateway")


class ConsumerSession(ReceivingSession):
    """One consumer socket bound to one broker consumer.

    With ``multi_topic`` (a v3 socket) the broker consumer spans several topics: each frame
    names its message's topic, and an id alone cannot be acknowledged, since it does not name
    its topic. Acks and nacks then go through the message delivered under that id, which the
    ledger keeps while the socket holds it (Pulsar's handler keeps a messageIdCache for the
    same reason); an id the socket does not hold (settled already, or delivered on another
    socket) is ignored.
    """

    thread_name = "rxstargate-gateway-consumer"

    def __init__(
        self,
        consumer: Any,
        params: ConsumerParams,
        deserialize_id: Callable[[bytes], Any],
        on_closing: Callable[[], None],
        on_closed: Callable[[], None],
        kick: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        multi_topic: bool = False,
        key_order: KeyOrder | None = None,
    ) -> None:
        super().__init__(0 if params.pull_mode else params.receiver_queue_size)
        self._consumer = consumer
        self._pull_mode = params.pull_mode
        self._dead_letter = (
            params.max_redeliver_count is not None or params.dead_letter_topic is not None
        )
        self._broker_redelivers = params.subscription_type in BROKER_REDELIVERS
        self._ledger = ConsumerLedger(params.ack_timeout_millis)
        self._nacks = DelayedNacks(
            params.negative_ack_redelivery_delay,
            BROKER_NACK_DELAY_MS if self._broker_redelivers else 0,
        )
        self._deserialize_id = deserialize_id
        self._on_closing = on_closing
        self._on_closed = on_closed
        self._kick = kick
        self._clock = clock
        self._multi_topic = multi_topic
        self._nudges = NudgeSchedule(clock)
        self.kicks = 0
        self._key_order = key_order
        if key_order is not None:
            key_order.join(self)

    def _idle(self) -> None:
        if self._key_order is not None:
            self._key_order.idle(self)
        if self._kick is None:
            return
        # A consumer joining and leaving makes pulsar-lite dispatch again (see _nudge).
        waited = self._nudges.due()
        if waited is None:
            return
        self.kicks += 1
        try:
            self._kick()
        except Exception as exc:  # the broker is gone: the socket ends anyway
            log.warning("nudging the broker failed: %s", exc)
        else:
            log.info("nudged the broker after %.1f s without messages", waited)

    def _busy(self) -> None:
        self._nudges.busy()

    def _receive(self, timeout_millis: int) -> Any:
        return self._consumer.receive(timeout_millis)

    def _admit(self, message: Any) -> str | None:
        if self._key_order is not None and not self._key_order.arrive(self, message):
            return None  # held back for its key's order (see _key_order), its credit returned
        return self._admit_in_order(message)

    def _admit_in_order(self, message: Any) -> str | None:
        key = message.message_id().serialize()
        deliver, replaces = self._ledger.admit(key, message, message.redelivery_count())
        if self._key_order is not None and (replaces or not deliver):
            self._key_order.settled(self, message)  # held already, or not delivered at all
        if not deliver:
            return None
        if replaces and not self._pull_mode:
            self.give_credit()
        return self._frame(message, key)

    def _frame(self, message: Any, key: bytes, redelivery_count: int | None = None) -> str:
        encoded = base64.b64encode(key).decode("ascii")
        return message_frame(message, encoded, redelivery_count, with_topic=self._multi_topic)

    def _tick(self) -> list[str]:
        frames: list[str] = []
        for key, held in self._ledger.expired():
            if self._dead_letter and self._broker_redelivers:
                # The broker client must count this redelivery towards maxRedeliverCount (and
                # dead-letter the message once it is over): it goes back through a negative
                # ack, at once. (Pulsar applies dead-letter policies to these types only.)
                self._ledger.settle(key, acked=False)
                if self._key_order is not None:
                    self._key_order.settled(self, held.message)
                if not self._pull_mode:
                    self.give_credit()
                with contextlib.suppress(Exception):
                    self._consumer.negative_acknowledge(held.message)
            else:
                frames.append(self._frame(held.message, key, held.redelivery_count))
        return self._held_back_ready() + frames + self._redeliver_nacked()

    def _held_back_ready(self) -> list[str]:
        """Messages held back for their key's order whose turn came, as the window allows."""
        if self._key_order is None:
            return []
        frames: list[str] = []
        for message in self._key_order.ready(self, self._credit.count):
            self._credit.add(-1)  # as a receive takes credit (ready() kept within it)
            frame = self._admit_in_order(message)
            if frame is None:
                self._credit.add(1)
            else:
                frames.append(frame)
        return frames

    def _redeliver_nacked(self) -> list[str]:
        """Nacked messages whose delay is over: to the broker, or again on this socket."""
        frames: list[str] = []
        now = self._clock()
        while (nacked := self._nacks.pop_due(now)) is not None:
            if self._broker_redelivers or nacked.message is None:
                with contextlib.suppress(Exception):  # Pulsar only logs a failed nack
                    self._consumer.negative_acknowledge(nacked.target)
            elif not self._ledger.knows(nacked.key):  # not back already, nor acked since
                if not self._credit.take(0):
                    self._nacks.push_back(nacked)  # when the window has room again
                    break
                self._redeliver_here(nacked, frames)
        return frames

    def _redeliver_here(self, nacked: Nacked, frames: list[str]) -> None:
        count = nacked.redelivery_count + 1
        self._ledger.admit(nacked.key, nacked.message, count)
        frames.append(self._frame(nacked.message, nacked.key, count))

    async def _on_text(self, text: str) -> None:
        try:
            await self._command(text)
        except CommandError:
            await self.fail()

    def _on_text_now(self, text: str) -> bool:
        # Acks, nacks, permits and isEndOfTopic need no waiting; unsubscribing and errors
        # (which close the socket) are left to _on_text. A CommandError from _apply comes from
        # an ack or nack whose id cannot be decoded, after settling an id that was not held:
        # doing that again changes nothing.
        try:
            command = parse_command(text)
            if command.kind == UNSUBSCRIBE:
                return False
            self._apply(command)
        except CommandError:
            return False
        return True

    async def _command(self, text: str) -> None:
        command = parse_command(text)
        if command.kind == UNSUBSCRIBE:
            self.stop_receiving()  # the consumer is gone afterwards; the socket stays open
            try:
                await asyncio.to_thread(self._consumer.unsubscribe)
            except Exception as exc:
                raise CommandError(f"unsubscribe failed: {exc}") from None
        else:
            self._apply(command)

    def _apply(self, command: Command) -> None:
        """Carry out a command other than unsubscribe."""
        if command.kind == PERMIT:
            if self._pull_mode:  # permits are ignored in push mode
                self.give_credit(command.permits)
        elif command.kind == END_OF_TOPIC:
            # pulsar-lite cannot terminate topics, so no topic ever ends.
            self.put(end_of_topic_answer(False))
        else:
            self._settle(command.id_bytes, command.kind == ACK)

    def _settle(self, key: bytes, acked: bool) -> None:
        with self._lock:
            count = self._ledger.redelivery_count(key)
            message = self._ledger.settle(key, acked)
        if message is not None and self._key_order is not None:
            self._key_order.settled(self, message)
        target = message
        if target is None:
            try:
                target = self._deserialize_id(key)
            except Exception as exc:
                raise CommandError(f"cannot decode messageId: {exc}") from None
            if self._multi_topic:
                return  # which topic it belongs to is unknown: nothing can be settled
        elif not self._pull_mode:
            self.give_credit()
        if not acked:
            if self._broker_redelivers and self._nacks.immediate:
                with contextlib.suppress(Exception):  # Pulsar only logs a failed nack
                    self._consumer.negative_acknowledge(target)
                return
            with self._lock:
                self._nacks.add(key, target, message, count, self._clock())
            return
        with contextlib.suppress(Exception):  # Pulsar only logs failed acks
            _acknowledge_async(self._consumer, target)

    async def close(self) -> None:
        """Close the broker consumer, then let the subscription go (on the event loop)."""
        if self._closed:
            return
        self._on_closing()
        try:
            await super().close()
        finally:
            self._on_closed()

    def _close_broker_side(self) -> None:
        if self._key_order is not None:
            queued = take_queued(self._consumer)  # they come back from the broker too
            with self._lock:
                self._key_order.leave(self, self._ledger.held_messages() + queued)
        self._consumer.close()


def _ignore(result: Any) -> None:
    """Pulsar's WebSocket service only logs a failed ack; the broker redelivers the message."""
    keep_thread_state()  # may run on the broker client's thread


def _acknowledge_async(consumer: Any, target: Any) -> None:
    """Acknowledge without waiting for the broker (the Python wrapper's ``acknowledge`` blocks
    the event loop until the ack is sent, once per ack)."""
    native = getattr(consumer, "_consumer", None)
    inner = getattr(target, "_message", None) or getattr(target, "_msg_id", None)
    if native is None or inner is None or not hasattr(native, "acknowledge_async"):
        consumer.acknowledge(target)
        return
    native.acknowledge_async(inner, _ignore)
