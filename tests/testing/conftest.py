"""MemoryPulsar fixtures: a fresh in-memory Pulsar (real or virtual time) and a client on it.

``pulsar`` and ``client`` here mean MemoryPulsar and a client wired to it: no test in this
directory starts local Pulsar.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from reactivex.testing import TestScheduler

import rxstargate as rs
from rxstargate.testing import MemoryPulsar


class Inbox:
    """An observer that keeps what it gets (acking it if asked) and how the stream ended."""

    def __init__(self, ack: bool = False) -> None:
        self.ack = ack
        self.lock = threading.Lock()
        self.messages: list[rs.Message[Any]] = []
        self.errors: list[Exception] = []
        self.completed = False

    def on_next(self, message: rs.Message[Any]) -> None:
        with self.lock:  # kept before it is acked: a test waiting for the ack then finds it
            self.messages.append(message)
        if self.ack:
            message.ack()

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)

    def on_completed(self) -> None:
        self.completed = True

    @property
    def payloads(self) -> list[bytes]:
        with self.lock:
            return [m.payload for m in self.messages]

    def __len__(self) -> int:
        with self.lock:
            return len(self.messages)


@pytest.fixture
def scheduler() -> TestScheduler:
    return TestScheduler()


@pytest.fixture
def pulsar(no_leaked_threads: None, scheduler: TestScheduler) -> Iterator[MemoryPulsar]:
    """A MemoryPulsar on virtual time; closing it closes its clients."""
    with MemoryPulsar(scheduler=scheduler) as memory:
        yield memory


@pytest.fixture
def client(pulsar: MemoryPulsar) -> rs.Client:
    return pulsar.client()


def received(pulsar: MemoryPulsar, inbox: Inbox, count: int) -> list[rs.Message[Any]]:
    """The first ``count`` messages of ``inbox``, once they came (virtual time moves on)."""
    pulsar.wait_until(lambda: len(inbox) >= count or bool(inbox.errors))
    assert not inbox.errors, inbox.errors
    with inbox.lock:
        return inbox.messages[:count]
