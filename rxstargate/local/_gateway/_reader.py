"""The reader endpoint: deliveries bounded by the window; any frame but isEndOfTopic is an ack."""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rxstargate._service_rules.commands import end_of_topic_answer, is_end_of_topic_query
from rxstargate.local._gateway._dedup import ReaderLedger
from rxstargate.local._gateway._nudge import NudgeSchedule
from rxstargate.local._gateway._receiving import ReceivingSession, message_frame

log = logging.getLogger("rxstargate.gateway")


class ReaderSession(ReceivingSession):
    """One reader socket bound to one broker reader.

    ``reopen(message_id)`` makes a broker reader that starts after ``message_id``: a reader
    that waits with credit to spare while its topic has more for it (pulsar-lite stopped
    dispatching, see _nudge) is opened again after the last message it delivered.
    """

    thread_name = "rxstargate-gateway-reader"

    def __init__(
        self,
        reader: Any,
        window: int,
        reopen: Callable[[Any], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(window)
        self._reader = reader
        self._ledger = ReaderLedger()
        self._outstanding = 0
        self._reopen = reopen
        self._nudges = NudgeSchedule(clock)
        self._last_id: Any = None
        self._swap = threading.Lock()  # the receive thread's reopen against close()
        self.reopened = 0

    def _receive(self, timeout_millis: int) -> Any:
        return self._reader.read_next(timeout_millis)

    def _admit(self, message: Any) -> str | None:
        message_id = message.message_id()
        position = (message_id.ledger_id(), message_id.entry_id(), message_id.batch_index())
        if not self._ledger.admit(message_id.partition(), position):
            return None
        self._outstanding += 1
        self._last_id = message_id
        return message_frame(message, base64.b64encode(message_id.serialize()).decode("ascii"))

    def _busy(self) -> None:
        self._nudges.busy()

    def _idle(self) -> None:
        # Only after a delivery: before one, opening again could skip what a reader that
        # started at "latest" has not seen yet (and pulsar-lite stops only after a read).
        if self._reopen is None or self._last_id is None or self._nudges.due() is None:
            return
        try:
            if not self._reader.has_message_available():
                return
        except Exception as exc:  # the broker is gone: the socket ends anyway
            log.warning("asking the broker for more messages failed: %s", exc)
            return
        with self._swap:
            if self._stopping.is_set():
                return
            try:
                self._reader.close()
                self._reader = self._reopen(self._last_id)
            except Exception as exc:  # the closed reader's next receive fails the socket
                log.warning("opening a stalled reader again failed: %s", exc)
                return
        self.reopened += 1
        log.info("opened a stalled reader again after its last message")

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
        with self._swap:
            self._reader.close()
