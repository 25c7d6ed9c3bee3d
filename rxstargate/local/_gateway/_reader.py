"""The reader endpoint: deliveries bounded by the window; any frame but isEndOfTopic is an ack."""

from __future__ import annotations

import base64
from typing import Any

from rxstargate._service_rules.commands import end_of_topic_answer, is_end_of_topic_query
from rxstargate.local._gateway._dedup import ReaderLedger
from rxstargate.local._gateway._receiving import ReceivingSession, message_frame


class ReaderSession(ReceivingSession):
    """One reader socket bound to one broker reader."""

    thread_name = "rxstargate-gateway-reader"

    def __init__(self, reader: Any, window: int) -> None:
        super().__init__(window)
        self._reader = reader
        self._ledger = ReaderLedger()
        self._outstanding = 0

    def _receive(self, timeout_millis: int) -> Any:
        return self._reader.read_next(timeout_millis)

    def _admit(self, message: Any) -> str | None:
        message_id = message.message_id()
        position = (message_id.ledger_id(), message_id.entry_id(), message_id.batch_index())
        if not self._ledger.admit(message_id.partition(), position):
            return None
        self._outstanding += 1
        return message_frame(message, base64.b64encode(message_id.serialize()).decode("ascii"))

    async def _on_text(self, text: str) -> None:
        self._on_text_now(text)

    def _on_text_now(self, text: str) -> bool:
        if "isEndOfTopic" in text and is_end_of_topic_query(text):
            # pulsar-lite cannot terminate topics, so no topic ever ends.
            self.put(end_of_topic_answer(False))
            return True
        with self._lock:
            if self._outstanding <= 0:
                return True
            self._outstanding -= 1
        self.give_credit()
        return True

    def _close_broker_side(self) -> None:
        self._reader.close()
