"""``batch``: group messages by count and time, handle a group at once, settle it together."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable

from rxstargate._config import checked_seconds
from rxstargate._serial import SerialObserver
from rxstargate._timers import TimerScheduler
from rxstargate.exceptions import ConfigurationError
from rxstargate.models import Message, message_in
from rxstargate.operators._failure import FailurePolicy, settle_failure, validate_policy
from rxstargate.operators._filter import message_of
from rxstargate.operators._outcomes import Processed
from rxstargate.streams import Stream

__all__ = ["Batch", "batch"]

log = logging.getLogger("rxstargate.operators")

R = TypeVar("R")


@dataclass(frozen=True, slots=True, eq=False)
class Batch(Generic[R]):
    """A group of messages handled together; :func:`~rxstargate.acknowledger` acks them all.

    Attributes:
        messages: the items, in arrival order: Messages, or the processed items of a
            ``process()`` before ``batch()`` (each carrying its message).
        result: what the handler returned for the group (None without a handler).
    """

    messages: tuple[Message[Any] | Processed[Any], ...]
    result: R | None = None

    def ack(self) -> None:
        """Acknowledge every message of the group (a processed item's too, even a ``Leave``)."""
        for message in self.messages:
            message.ack()


def batch(
    max_count: int,
    max_wait: float | timedelta,
    handler: Callable[[list[Any]], Any] | None = None,
    *,
    on_failure: FailurePolicy = "nack",
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[Message[Any]]], Stream[Batch[Any]]]:
    """Group messages into batches of at most ``max_count``, waiting at most ``max_wait`` s.

    ``max_wait`` is seconds or a timedelta. The items may be Messages or the processed items
    of a ``process()`` before it. A group is also cut as soon as the stream holds all its
    credit (every message of ``max_in_flight`` is unsettled), so a batch larger than
    ``max_in_flight`` never deadlocks. With a ``handler``, it is called with each group's
    items; when it returns, the group is emitted as a :class:`Batch` (the acknowledger acks
    all its messages); when it raises, each message is settled by ``on_failure`` on its own
    (logged; nacked by default) and nothing is emitted.

    Marble::

        messages:  -a-b-c-d-e--------|
        batch(2):  ---B---D-----E----|   (B = [a, b], D = [c, d]; E cut by max_wait or the end)

    Example:
        >>> stream.pipe(batch(100, 0.5, insert_rows)).subscribe(rs.acknowledger())  # doctest: +SKIP
    """
    if isinstance(max_count, bool) or not isinstance(max_count, int) or max_count < 1:
        raise ConfigurationError(f"max_count must be a positive int, not {max_count!r}")
    wait = checked_seconds(max_wait, "max_wait")
    if handler is not None and not callable(handler):
        raise ConfigurationError(f"handler must be callable or None, not {handler!r}")
    policy = validate_policy(on_failure)
    if scheduler is not None and not isinstance(scheduler, abc.SchedulerBase):
        raise ConfigurationError(f"scheduler must be an Rx scheduler or None, not {scheduler!r}")

    def operator(source: Observable[Message[Any]]) -> Stream[Batch[Any]]:
        def subscribe(
            observer: abc.ObserverBase[Batch[Any]],
            subscribe_scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            timers = scheduler or TimerScheduler.shared()
            grouping = _Grouping(observer, max_count, wait, handler, policy, timers)
            upstream = source.subscribe(
                grouping.on_next,
                grouping.on_error,
                grouping.on_completed,
                scheduler=subscribe_scheduler,
            )
            return CompositeDisposable(upstream, grouping.timer)

        return Stream(subscribe)

    return operator


class _Grouping:
    """One subscription to ``batch``: the group being filled, its timer, and the cuts."""

    def __init__(
        self,
        observer: abc.ObserverBase[Batch[Any]],
        max_count: int,
        wait: float,
        handler: Callable[[list[Any]], Any] | None,
        policy: FailurePolicy,
        scheduler: abc.SchedulerBase,
    ) -> None:
        self._max_count = max_count
        self._wait = wait
        self._handler = handler
        self._policy = policy
        self._scheduler = scheduler
        self.timer = SerialDisposable()
        # An exception the observer raises ends the stream: no more timed cuts.
        self._out: SerialObserver[Batch[Any]] = SerialObserver(observer, self.timer.dispose)
        self._lock = threading.Lock()
        self._group: list[Message[Any] | Processed[Any]] = []
        self._generation = 0  # groups cut so far: a timer of an older group does nothing

    def on_next(self, message: Message[Any]) -> None:
        with self._lock:
            self._group.append(message)
            first = len(self._group) == 1
            full = len(self._group) >= self._max_count
            expected = self._generation
        settler = getattr(message_in(message), "_settler", None)
        if full or getattr(settler, "saturated", False):
            self._cut()
        elif first:
            self.timer.disposable = self._scheduler.schedule_relative(
                self._wait, lambda *_: self._on_timer(expected)
            )

    def on_error(self, error: Exception) -> None:
        self._out.on_error(error)

    def on_completed(self) -> None:
        self._cut()
        self._out.on_completed()

    def _on_timer(self, expected: int) -> None:
        with self._lock:
            current = self._generation
        if current == expected:
            self._cut()

    def _cut(self) -> None:
        with self._lock:
            if not self._group:
                return
            taken = tuple(self._group)
            self._group.clear()
            self._generation += 1
        self.timer.disposable = Disposable()
        self._emit(taken)

    def _emit(self, messages: tuple[Message[Any] | Processed[Any], ...]) -> None:
        if self._handler is None:
            self._out.on_next(Batch(messages))
            return
        try:
            result = self._handler(list(messages))
        except Exception as exc:
            if self._policy == "error":
                self._out.on_error(exc)
                return
            log.info("a batch of %d failed: %r", len(messages), exc)
            for item in messages:
                settle_failure(self._policy, message_of(item), exc, 1, _nothing)
            return
        self._out.on_next(Batch(messages, result))


def _nothing() -> None:
    return None
