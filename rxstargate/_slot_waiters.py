"""Coroutines waiting for a producer's send slot, woken first come, first served.

``asend()`` never blocks its event loop: when every slot is taken it waits here, on its own
loop, until a freed slot wakes it (or its timeout passes). A waiter that was chosen and then
cancelled passes the wake on, so no freed slot is lost.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Callable

__all__ = ["SlotWaiters"]

_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class SlotWaiters:
    """The coroutines of one producer that wait for a free slot, oldest first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: collections.deque[_Waiter] = collections.deque()

    async def wait(
        self, loop: asyncio.AbstractEventLoop, timeout: float, slot_free: Callable[[], bool]
    ) -> None:
        """Wait on ``loop`` until a slot is freed (or ``timeout``); ``slot_free`` checks now."""
        waiter: asyncio.Future[None] = loop.create_future()
        entry = (loop, waiter)
        with self._lock:
            self._waiters.append(entry)
        try:
            if slot_free():  # freed before this waiter was listed
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout)
        finally:
            with self._lock:
                try:
                    self._waiters.remove(entry)
                    woken = False
                except ValueError:
                    woken = True
            if woken and not (waiter.done() and not waiter.cancelled()):
                self.wake_next()  # chosen, then cancelled or timed out: pass the wake on

    def wake_next(self, count: int = 1) -> None:
        """``count`` slots were freed: wake the coroutines that waited longest (any thread)."""
        if not self._waiters:  # the common case, on every ack: no asend() waits
            return
        chosen: list[_Waiter] = []
        with self._lock:
            while self._waiters and len(chosen) < count:
                entry = self._waiters.popleft()
                if not entry[1].done():
                    chosen.append(entry)
        for loop, waiter in chosen:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits there
                loop.call_soon_threadsafe(_wake, waiter)

    def wake_all(self) -> None:
        """The producer closed: every waiter finds out."""
        with self._lock:
            waiters = list(self._waiters)
            self._waiters.clear()
        for loop, waiter in waiters:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake, waiter)
