"""Faults a test asks MemoryPulsar to inject: refused handshakes, failed sends, lost frames.

Each fault is armed for a number of occurrences and used up as they happen. Used under the
broker's lock only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["DROP_KINDS", "Faults"]

#: What ``drop_next`` can lose: a producer's send frame, the broker's ack to it, a message
#: delivered to a consumer or reader, or a command (ack, nack, permit) a consumer sends.
DROP_KINDS = ("send", "ack", "message", "settle")

#: Reasons given with a refused handshake when the test names none, as Pulsar words them.
DEFAULT_REASONS = {
    400: "Invalid query params",
    401: "Failed to authenticate",
    403: "Client is not authorized to Produce or Consume",
    404: "Topic not found",
    409: "Failed to create consumer: Exclusive consumer is already connected",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


@dataclass(slots=True)
class _Armed:
    topic: str | None  # None: any topic
    left: int
    detail: str = ""

    def matches(self, topics: tuple[str, ...]) -> bool:
        return self.left > 0 and (self.topic is None or self.topic in topics)


class Faults:
    """The faults waiting to happen."""

    def __init__(self) -> None:
        self._refusals: deque[tuple[int, str]] = deque()
        self._send_failures: list[_Armed] = []
        self._drops: dict[str, list[_Armed]] = {kind: [] for kind in DROP_KINDS}

    def refuse(self, status: int, reason: str, count: int) -> None:
        """Refuse the next ``count`` handshakes with ``status``."""
        self._refusals.extend([(status, reason)] * count)

    def take_refusal(self) -> tuple[int, str] | None:
        """The refusal for this handshake, if one is armed."""
        return self._refusals.popleft() if self._refusals else None

    def fail_send(self, topic: str | None, message: str, count: int) -> None:
        """Fail the next ``count`` sends (on ``topic``, or any) with ``send-error:8``."""
        self._send_failures.append(_Armed(topic, count, message))

    def take_send_failure(self, topic: str) -> str | None:
        """The error message for this send, if a failure is armed for its topic."""
        return self._use(self._send_failures, (topic,))

    def drop(self, kind: str, topic: str | None, count: int) -> None:
        """Lose the next ``count`` frames of ``kind`` (on ``topic``, or any), with the socket."""
        self._drops[kind].append(_Armed(topic, count))

    def take_drop(self, kind: str, topics: tuple[str, ...]) -> bool:
        """Whether this frame of ``kind`` on one of ``topics`` is to be lost."""
        return bool(kind) and self._use(self._drops[kind], topics) is not None

    @staticmethod
    def _use(armed: list[_Armed], topics: tuple[str, ...]) -> str | None:
        for fault in armed:
            if fault.matches(topics):
                fault.left -= 1
                if fault.left == 0:
                    armed.remove(fault)
                return fault.detail
        return None
