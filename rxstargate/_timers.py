"""One timer thread for the operators' timeouts, retry delays and batch windows (an Rx scheduler).

reactivex's ``TimeoutScheduler`` starts a thread per scheduled action (``threading.Timer``),
about 125 us of CPU each, which a handler timeout pays on every message although nearly every
one is cancelled (the handler returned in time). :class:`TimerScheduler` keeps every pending
action in one heap served by one thread ("rxstargate-timers"), started by the first action and
ended once nothing was pending for ``idle_exit`` seconds. A tenth of a second by default: a
stream quiet for longer pays one thread start when its next timer comes (at most ten a second,
about 1 ms of CPU), and a program whose streams have ended keeps no timer thread. An action
that comes due runs on a thread of its own, as before ("rxstargate-timer-action"): it may call
user code (a retried handler, a downstream observer, a dead-letter send), which must never hold
up another stream's timeout. What an action raises is logged.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Any, ClassVar, TypeVar

from reactivex import abc, typing
from reactivex.disposable import CompositeDisposable, Disposable, SingleAssignmentDisposable
from reactivex.scheduler.periodicscheduler import PeriodicScheduler

__all__ = ["TimerScheduler"]

log = logging.getLogger("rxstargate.operators")

_TState = TypeVar("_TState")


class _Timer:
    __slots__ = ("action", "cancelled", "done", "state")

    def __init__(self, action: abc.ScheduledAction[Any], state: Any) -> None:
        self.action = action
        self.state = state
        self.cancelled = False
        self.done = SingleAssignmentDisposable()


class TimerScheduler(PeriodicScheduler):
    """Runs scheduled actions on one shared thread, at their due time (see the module docstring).

    Args:
        idle_exit: seconds the thread waits with nothing pending before it ends.
    """

    _shared: ClassVar[TimerScheduler | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, idle_exit: float = 0.1) -> None:
        super().__init__()
        self._idle_exit = idle_exit
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()
        self._cancelled = 0  # cancelled timers still in the heap
        self._thread: threading.Thread | None = None

    @classmethod
    def shared(cls) -> TimerScheduler:
        """The process's scheduler for rxstargate's operators."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    @property
    def pending(self) -> int:
        """Actions scheduled and neither run nor cancelled yet."""
        return len(self._heap) - self._cancelled

    def schedule(
        self, action: abc.ScheduledAction[_TState], state: _TState | None = None
    ) -> abc.DisposableBase:
        return self._add(0.0, action, state)

    def schedule_relative(
        self,
        duetime: typing.RelativeTime,
        action: abc.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        return self._add(self.to_seconds(duetime), action, state)

    def schedule_absolute(
        self,
        duetime: typing.AbsoluteTime,
        action: abc.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        return self.schedule_relative(self.to_datetime(duetime) - self.now, action, state)

    def _add(
        self, seconds: float, action: abc.ScheduledAction[Any], state: Any
    ) -> abc.DisposableBase:
        timer = _Timer(action, state)
        due = time.monotonic() + max(0.0, seconds)
        with self._lock:
            heapq.heappush(self._heap, (due, next(self._order), timer))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="rxstargate-timers", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is timer:
                self._wake.notify()  # due before what the thread waits for
        return CompositeDisposable(timer.done, Disposable(lambda: self._cancel(timer)))

    def _cancel(self, timer: _Timer) -> None:
        with self._lock:
            if timer.cancelled:
                return
            timer.cancelled = True
            self._cancelled += 1
            if self._heap and self._heap[0][2] is timer:
                self._wake.notify()  # the thread waits for it: let it look at the next one
            if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
                # Cancelled timers leave the heap when due; far-off ones (a 30 s handler
                # timeout cancelled after each message) are swept out before they pile up.
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _next_due(self) -> _Timer | None:
        """Under the lock: wait for the next action that is due; None when idle long enough."""
        idle_since = None
        while True:
            heap = self._heap
            while heap and heap[0][2].cancelled:
                heapq.heappop(heap)
                self._cancelled -= 1
            now = time.monotonic()
            if heap:
                idle_since = None
                due, _, timer = heap[0]
                if due <= now:
                    heapq.heappop(heap)
                    timer.cancelled = True  # run once: a later dispose does nothing
                    return timer
                self._wake.wait(due - now)
            elif idle_since is None:
                idle_since = now
                self._wake.wait(self._idle_exit)
            elif now - idle_since >= self._idle_exit:
                self._thread = None
                return None
            else:
                self._wake.wait(self._idle_exit - (now - idle_since))

    def _run(self) -> None:
        while True:
            with self._lock:
                timer = self._next_due()
            if timer is None:
                return
            threading.Thread(
                target=self._invoke, args=(timer,), name="rxstargate-timer-action", daemon=True
            ).start()

    def _invoke(self, timer: _Timer) -> None:
        try:
            timer.done.disposable = self.invoke_action(timer.action, timer.state)
        except Exception:
            log.exception("a scheduled action raised")
