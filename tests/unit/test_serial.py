"""SerialObserver: one call at a time from many threads, in order, nothing after the end."""

from __future__ import annotations

import threading
from typing import Any

from rxstargate._serial import SerialObserver


class Recorder:
    """Records calls and fails the test's check if two ever overlap."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.events: list[str] = []
        self.overlaps = 0
        self._busy = threading.Lock()
        self.serial: SerialObserver[Any] | None = None

    def _enter(self) -> None:
        if not self._busy.acquire(blocking=False):
            self.overlaps += 1
            self._busy.acquire()

    def on_next(self, value: Any) -> None:
        self._enter()
        try:
            self.items.append(value)
            if value == "reenter" and self.serial is not None:
                self.serial.on_next("queued by the observer")  # delivered after this returns
                self.items.append("after reenter")
        finally:
            self._busy.release()

    def on_error(self, error: Exception) -> None:
        self.events.append(f"error {error}")

    def on_completed(self) -> None:
        self.events.append("completed")


def test_items_from_many_threads_arrive_one_at_a_time_each_thread_in_order() -> None:
    recorder = Recorder()
    serial: SerialObserver[Any] = SerialObserver(recorder)
    start = threading.Barrier(4)

    def emit(thread: int) -> None:
        start.wait(10)
        for index in range(2000):
            serial.on_next((thread, index))

    threads = [threading.Thread(target=emit, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    serial.on_completed()
    serial.on_next("late")
    assert recorder.overlaps == 0
    assert len(recorder.items) == 8000
    for thread in range(4):
        assert [i for t, i in recorder.items if t == thread] == list(range(2000))
    assert recorder.events == ["completed"]


def test_an_item_emitted_from_inside_on_next_is_delivered_after_it_returns() -> None:
    recorder = Recorder()
    serial: SerialObserver[Any] = SerialObserver(recorder)
    recorder.serial = serial
    serial.on_next("reenter")
    serial.on_next("next")
    assert recorder.items == ["reenter", "after reenter", "queued by the observer", "next"]
    assert recorder.overlaps == 0


def test_a_terminal_event_is_delivered_once_and_ends_the_stream() -> None:
    recorder = Recorder()
    serial: SerialObserver[Any] = SerialObserver(recorder)
    serial.on_next(1)
    serial.on_error(ValueError("boom"))
    serial.on_completed()
    serial.on_next(2)
    assert recorder.items == [1]
    assert recorder.events == ["error boom"]
    assert serial.ended
