"""Messages with a recording settler, for operator tests that need no socket; ``client`` is a
client on the test's MemoryPulsar (real-broker twins take ``backend``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

import rxstargate as rs


@pytest.fixture(autouse=True)
def _prompt_timer_thread(prompt_timer_thread: None) -> None:
    """Operators' timers end their thread promptly, so the leaked-thread check waits less."""


class RecordingSettler:
    """Records how each message was settled; fails the test on a second settle."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: list[bytes] = []
        self.nacked: list[bytes] = []
        self.twice: list[bytes] = []

    def _record(self, into: list[bytes], message: rs.Message[Any]) -> None:
        with self.lock:
            if message.payload in self.acked or message.payload in self.nacked:
                self.twice.append(message.payload)
            into.append(message.payload)

    def ack(self, message: rs.Message[Any], on_lost: Any = None) -> None:
        self._record(self.acked, message)

    def nack(self, message: rs.Message[Any], on_lost: Any = None) -> None:
        self._record(self.nacked, message)


MessageFactory = Callable[..., rs.Message[Any]]


@pytest.fixture
def settler() -> RecordingSettler:
    return RecordingSettler()


@pytest.fixture
def make_message(settler: RecordingSettler) -> MessageFactory:
    counter = iter(range(1_000_000))

    def make(payload: bytes, key: str | None = None, **extra: Any) -> rs.Message[Any]:
        return rs.Message(
            topic=rs.TopicName.parse("t"),
            payload=payload,
            message_id=rs.MessageId.from_parts(1, next(counter)),
            key=key,
            _settler=settler,
            **extra,
        )

    return make


@pytest.fixture
def client(memory: Any) -> rs.Client:
    """An ``rs.Client`` on the test's MemoryPulsar (closed with it)."""
    client: rs.Client = memory.client()
    return client
