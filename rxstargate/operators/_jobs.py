"""One item's way through ``process``: its :class:`Job`, and the actions the lanes decide.

The lanes (``_lanes``) own every field; a driver only reads them and carries out the actions.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

__all__ = [
    "Action",
    "Completed",
    "Dropped",
    "Failed",
    "Job",
    "JobState",
    "RetryLater",
    "Start",
    "Succeeded",
]

T = TypeVar("T")


class JobState(StrEnum):
    """Where one item is on its way through the handler."""

    WAITING = "waiting"  # taken in, not started (behind its key, or for a slot)
    RUNNING = "running"  # an attempt runs and its outcome is not decided yet
    DELAYED = "delayed"  # an attempt failed: waits for the retry delay
    DUE = "due"  # the delay passed: starts at the next free slot (after its timed-out call)
    SETTLED = "settled"  # succeeded or failed for good (a timed-out call may still run)
    DROPPED = "dropped"  # left unsettled by the end of the stream, or lapsed


_WAITING = JobState.WAITING  # a module constant: cheaper than a lookup on the class


class Job(Generic[T]):
    """One item across its attempts. The core owns its fields; drivers only read them."""

    __slots__ = ("attempt", "calls", "decided", "item", "key", "state")

    def __init__(self, item: T, key: Hashable) -> None:
        self.item = item
        self.key = key
        self.state = _WAITING
        self.attempt = 0  # the attempt started last, from 1
        self.decided = 0  # the last attempt whose outcome counts (a late one is ignored)
        self.calls = 0  # calls started and not returned yet

    def __repr__(self) -> str:
        return f"Job({self.item!r}, key={self.key!r}, {self.state}, attempt={self.attempt})"


@dataclass(slots=True)
class Start(Generic[T]):
    """Call the handler for ``job``: its ``attempt``-th call, on worker ``worker``."""

    job: Job[T]
    attempt: int
    worker: int


@dataclass(slots=True)
class Succeeded(Generic[T]):
    """``job``'s ``attempt`` returned ``result``: emit or settle it."""

    job: Job[T]
    attempt: int
    result: Any


@dataclass(slots=True)
class Failed(Generic[T]):
    """``job`` failed for good on ``attempt``: settle it by the failure policy."""

    job: Job[T]
    attempt: int
    error: BaseException


@dataclass(slots=True)
class RetryLater(Generic[T]):
    """``job``'s ``attempt`` failed: report ``retry_due(job)`` after ``delay`` seconds."""

    job: Job[T]
    attempt: int
    delay: float


@dataclass(slots=True)
class Dropped(Generic[T]):
    """``jobs`` are left unsettled (the broker redelivers them); forget their retry timers."""

    jobs: tuple[Job[T], ...]


@dataclass(slots=True)
class Completed:
    """The upstream completed and every item ended: complete the stream."""


Action = Start[T] | Succeeded[T] | Failed[T] | RetryLater[T] | Dropped[T] | Completed
