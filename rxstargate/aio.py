"""asyncio bridges: iterate an Observable with ``async for``, bounded and cancellation-safe.

rxstargate's streams call their observers on rxstargate's own threads. :func:`iterate` hands
each item to the event loop thread-safely; the emitting thread waits while ``buffer`` items
are queued and not yet taken, so a slow ``async for`` body slows the stream down (for a
reader, credit comes back only as items are taken) instead of filling memory. Closing the
generator disposes the subscription, which closes its socket: an exception or cancellation in
the loop does that at once; after a ``break`` Python closes the generator once nothing refers
to it, so use ``contextlib.aclosing`` to close it right at the ``break``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from reactivex import Observable

__all__ = ["iterate"]

T = TypeVar("T")

_DONE = object()


async def iterate(source: Observable[T], *, buffer: int = 1000) -> AsyncIterator[T]:
    """Yield ``source``'s items on the running event loop.

    Args:
        source: any Observable; rxstargate streams are typical.
        buffer: the most items queued for the loop; the emitting thread waits beyond it.

    Raises:
        Exception: the error that ended ``source``, after the items before it.

    Example:
        >>> async for message in iterate(topic.observe(start="earliest")):  # doctest: +SKIP
        ...     print(message.payload)
    """
    if buffer < 1:
        raise ValueError("buffer must be at least 1")
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    room = threading.Semaphore(buffer)
    leaving = threading.Event()

    def put(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            leaving.set()

    def on_next(value: T) -> None:
        while not room.acquire(timeout=0.25):  # leaving wakes it: the timeout is a backstop
            if leaving.is_set():
                return
        if not leaving.is_set():
            put(value)

    def on_error(error: Exception) -> None:
        put(_Failure(error))

    def on_completed() -> None:
        put(_DONE)

    subscription = source.subscribe(on_next, on_error, on_completed)
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            room.release()
            yield item
    finally:
        leaving.set()
        # An emitter waiting for room returns now, and any later one without waiting:
        # dispose() waits for the emitting thread, which would otherwise wait out its poll.
        room.release(buffer + 1)
        await asyncio.to_thread(subscription.dispose)


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error
