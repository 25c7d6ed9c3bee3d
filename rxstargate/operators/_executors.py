"""Where ``process`` runs handler calls off the delivering thread: a thread pool or an event loop.

Each executor owns its threads: they start with the first call and end with :meth:`close`,
which never waits for a call in progress (a thread cannot be stopped; it ends when its call
returns). Work handed over after ``close()`` is dropped: nothing starts after the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["LoopExecutor", "PoolExecutor"]

T = TypeVar("T")


class PoolExecutor:
    """Runs calls on up to ``workers`` threads of its own ("rxstargate-process")."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    def submit(self, work: Callable[[T], None], argument: T) -> None:
        with self._lock:
            if self._closed:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self._workers, thread_name_prefix="rxstargate-process"
                )
            self._pool.submit(work, argument)

    def close(self) -> None:
        """Cancel what has not started; running calls end on their own."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class LoopExecutor:
    """Runs coroutines as tasks on an event loop of its own, on one thread
    ("rxstargate-process-loop")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def submit(
        self,
        coroutine: Coroutine[Any, Any, Any],
        on_done: Callable[[asyncio.Future[Any]], None],
    ) -> _Task | None:
        """Run ``coroutine`` as a task; ``on_done`` gets the task once it finished (on the
        loop's thread), after a cancelled one has handled its cancellation. None, with the
        coroutine closed unrun, after :meth:`close`."""
        with self._lock:
            if self._closed:
                coroutine.close()
                return None
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(
                    target=_run_loop,
                    args=(self._loop,),
                    name="rxstargate-process-loop",
                    daemon=True,
                ).start()
            task = _Task(self, self._loop)
            self._loop.call_soon_threadsafe(task.start, coroutine, on_done)
        return task

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the loop: the tasks still running are cancelled, then it closes."""
        with self._lock:
            self._closed = True
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)


class _Task:
    """One coroutine on the loop, cancellable from any thread."""

    __slots__ = ("_executor", "_loop", "_task")

    def __init__(self, executor: LoopExecutor, loop: asyncio.AbstractEventLoop) -> None:
        self._executor = executor
        self._loop = loop
        self._task: asyncio.Task[Any] | None = None

    def start(
        self,
        coroutine: Coroutine[Any, Any, Any],
        on_done: Callable[[asyncio.Future[Any]], None],
    ) -> None:
        if self._executor.closed:  # closed before the loop got to it: it never starts
            coroutine.close()
            return
        self._task = self._loop.create_task(coroutine)
        self._task.add_done_callback(on_done)

    def cancel(self) -> None:
        """Cancel the task (it sees CancelledError); nothing if it is over or never started."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the task is over
            self._loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Run ``loop`` until stopped, then cancel what is left and close it."""
    try:
        loop.run_forever()
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    finally:
        loop.close()
