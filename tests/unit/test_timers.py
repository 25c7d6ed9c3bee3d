"""The operators' timer scheduler: one waiting thread, actions in due order, cancels, idle exit."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from rxstargate._timers import TimerScheduler

WAIT = 10.0


def _timer_thread() -> threading.Thread | None:
    return next((t for t in threading.enumerate() if t.name == "rxstargate-timers"), None)


def test_actions_run_in_due_order_each_on_a_thread_of_its_own() -> None:
    timers = TimerScheduler(idle_exit=0.05)
    ran: list[tuple[str, str]] = []
    done = threading.Event()

    def record(name: str) -> Any:
        def action(scheduler: Any, state: Any) -> None:
            ran.append((name, threading.current_thread().name))
            if len(ran) == 4:
                done.set()

        return action

    # All are scheduled well before the first is due, and each action has 0.15 s to record
    # itself on its new thread before the next one is due.
    start = timers.now + timedelta(seconds=0.1)
    timers.schedule_absolute(start + timedelta(seconds=0.3), record("third"))
    timers.schedule_absolute(start + timedelta(seconds=0.15), record("second"))
    timers.schedule_absolute(start, record("first"))
    timers.schedule_absolute(start + timedelta(seconds=0.45), record("fourth"))
    assert done.wait(WAIT)
    assert [name for name, _ in ran] == ["first", "second", "third", "fourth"]
    assert {thread for _, thread in ran} == {"rxstargate-timer-action"}


def test_a_cancelled_action_never_runs_and_the_thread_ends_once_idle() -> None:
    timers = TimerScheduler(idle_exit=0.05)
    ran = threading.Event()
    far = timers.schedule_relative(30.0, lambda *_: ran.set())
    assert timers.pending == 1
    thread = _timer_thread()
    assert thread is not None
    far.dispose()  # the thread waited for it: it must not sleep 30 s for nothing
    thread.join(WAIT)
    assert not thread.is_alive()
    assert not ran.is_set() and timers.pending == 0


def test_many_cancelled_far_timers_do_not_pile_up() -> None:
    timers = TimerScheduler(idle_exit=0.05)
    keep = timers.schedule_relative(30.0, lambda *_: None)
    for _ in range(1000):
        timers.schedule_relative(30.0, lambda *_: None).dispose()
    assert timers.pending == 1
    assert len(timers._heap) <= 130  # swept, not kept for 30 s
    keep.dispose()
    assert timers.pending == 0


class _Logged(logging.Handler):
    """Records the messages logged to it, and says when one came."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []
        self.came = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.came.set()


def test_an_action_that_raises_is_logged_and_the_next_still_runs() -> None:
    timers = TimerScheduler(idle_exit=0.05)
    after = threading.Event()
    logged = _Logged()
    logger = logging.getLogger("rxstargate.operators")

    def boom(scheduler: Any, state: Any) -> None:
        raise RuntimeError("boom")

    logger.addHandler(logged)
    try:
        timers.schedule(boom)
        timers.schedule_relative(0.01, lambda *_: after.set())
        assert after.wait(WAIT)
        # Each action runs on a thread of its own: the next one may finish before the
        # failed one's thread has logged, so the log is waited for, not read at once.
        assert logged.came.wait(WAIT)
    finally:
        logger.removeHandler(logged)
    assert "a scheduled action raised" in logged.messages


def test_the_thread_comes_back_for_actions_scheduled_after_it_ended() -> None:
    timers = TimerScheduler(idle_exit=0.01)
    first, second = threading.Event(), threading.Event()
    timers.schedule(lambda *_: first.set())
    assert first.wait(WAIT)
    thread = _timer_thread()
    if thread is not None:
        thread.join(WAIT)
    timers.schedule(lambda *_: second.set())
    assert second.wait(WAIT)


def test_the_operators_share_one_scheduler() -> None:
    assert TimerScheduler.shared() is TimerScheduler.shared()


def test_an_action_that_blocks_holds_up_no_other_timer() -> None:
    timers = TimerScheduler(idle_exit=0.05)
    release, other = threading.Event(), threading.Event()
    timers.schedule(lambda *_: release.wait(WAIT))  # a handler that hangs, say
    timers.schedule_relative(0.01, lambda *_: other.set())
    try:
        assert other.wait(WAIT)
    finally:
        release.set()
