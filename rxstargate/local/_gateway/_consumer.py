"""The consumer endpoint: deliveries bounded by window or permits, acks, nacks and commands."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import Callable
from typing import Any

from rxstargate.local._gateway._dedup import ConsumerLedger
from rxstargate.local._gateway._params import ConsumerParams
from rxstargate.local._gateway._receiving import ReceivingSession, message_frame


class CommandError(Exception):
    """A consumer command Pulsar cannot parse (it closes the socket)."""


def decode_message_id(value: Any) -> bytes:
    """The serialized id bytes of a command's ``messageId``.

    Raises:
        CommandError: when it is missing or not standard base64.
    """
    if not isinstance(value, str) or not value:
        raise CommandError("messageId is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CommandError(str(exc)) from None


class ConsumerSession(ReceivingSession):
    """One consumer socket bound to one broker consumer."""

    thread_name = "rxstargate-gateway-consumer"

    def __init__(
        self,
        consumer: Any,
        params: ConsumerParams,
        deserialize_id: Callable[[bytes], Any],
        on_closing: Callable[[], None],
        on_closed: Callable[[], None],
    ) -> None:
        super().__init__(0 if params.pull_mode else params.receiver_queue_size)
        self._consumer = consumer
        self._pull_mode = params.pull_mode
        self._dead_letter = (
            params.max_redeliver_count is not None or params.dead_letter_topic is not None
        )
        self._ledger = ConsumerLedger(params.ack_timeout_millis)
        self._deserialize_id = deserialize_id
        self._on_closing = on_closing
        self._on_closed = on_closed

    def _receive(self, timeout_millis: int) -> Any:
        return self._consumer.receive(timeout_millis)

    def _admit(self, message: Any) -> str | None:
        key = message.message_id().serialize()
        deliver, replaces = self._ledger.admit(key, message, message.redelivery_count())
        if not deliver:
            return None
        if replaces and not self._pull_mode:
            self.give_credit()
        return message_frame(message, base64.b64encode(key).decode("ascii"))

    def _tick(self) -> list[str]:
        expired = self._ledger.expired()
        if not self._dead_letter:
            return [
                message_frame(
                    held.message, base64.b64encode(key).decode("ascii"), held.redelivery_count
                )
                for key, held in expired
            ]
        # With a dead-letter policy the broker client must count the redelivery, so the
        # expired message goes back through a negative ack (after negativeAckRedeliveryDelay).
        for key, held in expired:
            self._ledger.settle(key, acked=False)
            if not self._pull_mode:
                self.give_credit()
            with contextlib.suppress(Exception):
                self._consumer.negative_acknowledge(held.message)
        return []

    async def _on_text(self, text: str) -> None:
        try:
            await self._command(text)
        except CommandError:
            await self.fail()

    async def _command(self, text: str) -> None:
        try:
            command = json.loads(text)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if not isinstance(command, dict):
            raise CommandError("not a JSON object")
        kind = command.get("type")
        if kind == "permit":
            self._permit(command.get("permitMessages"))
        elif kind == "isEndOfTopic":
            # pulsar-lite cannot terminate topics, so no topic ever ends.
            self.put('{"endOfTopic":false}')
        elif kind == "unsubscribe":
            self.stop_receiving()  # the consumer is gone afterwards; the socket stays open
            try:
                await asyncio.to_thread(self._consumer.unsubscribe)
            except Exception as exc:
                raise CommandError(f"unsubscribe failed: {exc}") from None
        else:
            self._settle(decode_message_id(command.get("messageId")), kind != "negativeAcknowledge")

    def _permit(self, value: Any) -> None:
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise CommandError("permitMessages is missing")
        if self._pull_mode:
            self.give_credit(value)

    def _settle(self, key: bytes, acked: bool) -> None:
        with self._lock:
            message = self._ledger.settle(key, acked)
        target = message
        if target is None:
            try:
                target = self._deserialize_id(key)
            except Exception as exc:
                raise CommandError(f"cannot decode messageId: {exc}") from None
        elif not self._pull_mode:
            self.give_credit()
        try:
            if acked:
                self._consumer.acknowledge(target)
            else:
                self._consumer.negative_acknowledge(target)
        except Exception:  # Pulsar only logs failed acks
            pass

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
        self._consumer.close()
