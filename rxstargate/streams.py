"""Live streams of a client: the Observables ``observe()`` returns, and handles to stop them.

:class:`Stream` is an ordinary RxPY ``Observable`` with three differences that matter in
notebooks and asyncio code:

- ``pipe(...)`` returns a :class:`Stream` again, so what follows holds for whole pipelines;
- ``run()`` disposes its subscription when the wait is interrupted (``KeyboardInterrupt`` in a
  notebook cell), so no consumer is left acking messages that nobody sees;
- ``await stream`` and ``stream.to_future()`` hand the result to the event loop thread-safely
  (rxstargate's callbacks run on its own threads; RxPY's own ``ops.to_future()`` would never
  wake the loop) and dispose the subscription if the awaiting task is cancelled.

:class:`StreamHandle` is what ``client.streams`` lists: one per open producer, consumer or
reader socket owner, each stoppable.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar, cast

from reactivex import Observable, abc
from reactivex.internal.exceptions import SequenceContainsNoElementsError

from rxstargate.models import TopicName

__all__ = ["Stream", "StreamHandle"]

T = TypeVar("T")


class Stream(Observable[T], Generic[T]):
    """An Observable of a topic (or a pipeline over one); see the module docstring.

    Example:
        >>> last = topic.observe(start="earliest").pipe(ops.take(3)).run()  # doctest: +SKIP
    """

    def pipe(self, *operators: Callable[[Any], Any]) -> Any:
        """Compose operators; an Observable result is a :class:`Stream` again."""
        result = super().pipe(*operators)
        if isinstance(result, Observable) and not isinstance(result, Stream):
            inner: Observable[Any] = result

            def subscribe(
                observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
            ) -> abc.DisposableBase:
                return inner.subscribe(observer, scheduler=scheduler)

            return Stream(subscribe)
        return result

    def run(self, scheduler: abc.SchedulerBase | None = None) -> T:
        """Subscribe and block until the stream ends; return its last item.

        Interrupting the wait (Ctrl-C, a notebook's stop button) disposes the subscription,
        which closes its socket, then re-raises.

        Raises:
            SequenceContainsNoElementsError: when it completed without items.
            Exception: the error that ended the stream.
        """
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def on_next(value: T) -> None:
            outcome["last"] = value

        def on_error(error: Exception) -> None:
            outcome["error"] = error
            done.set()

        subscription = self.subscribe(on_next, on_error, done.set, scheduler=scheduler)
        try:
            while not done.wait(0.5):
                pass
        except BaseException:
            subscription.dispose()
            raise
        if "error" in outcome:
            raise cast(Exception, outcome["error"])
        if "last" not in outcome:
            raise SequenceContainsNoElementsError()
        return cast(T, outcome["last"])

    def to_future(self, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Future[T]:
        """Subscribe and return an asyncio Future of the last item, set thread-safely.

        RxPY's ``ops.to_future()`` sets its future from the thread that emits, which for
        rxstargate is one of its own threads: the event loop is never woken and the await
        hangs. This one hands the result over with ``call_soon_threadsafe``; cancelling the
        future disposes the subscription.

        Args:
            loop: the event loop of the future; the running one when None.

        Example:
            >>> first = await topic.observe(start="earliest").pipe(ops.first()).to_future()  # doctest: +SKIP
        """  # noqa: E501
        loop = loop or asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        outcome: dict[str, Any] = {}

        def settle() -> None:
            if future.done():
                return
            if "error" in outcome:
                future.set_exception(outcome["error"])
            elif "last" in outcome:
                future.set_result(outcome["last"])
            else:
                future.set_exception(SequenceContainsNoElementsError())

        def on_next(value: T) -> None:
            outcome["last"] = value

        def on_error(error: Exception) -> None:
            outcome["error"] = error
            loop.call_soon_threadsafe(settle)

        def on_completed() -> None:
            loop.call_soon_threadsafe(settle)

        subscription = self.subscribe(on_next, on_error, on_completed)
        future.add_done_callback(lambda _: subscription.dispose())
        return future

    def __await__(self) -> Generator[Any, None, T]:
        """Await the last item from a coroutine without blocking the event loop."""
        return self.to_future().__await__()


class StreamHandle:
    """A live producer, consumer or reader of a client, as listed by ``client.streams``.

    Attributes:
        kind: ``"producer"``, ``"consumer"`` or ``"reader"``.
        topic: the topic it works on.
        subscription: the consumer's subscription, else None.
        started: ``time.monotonic()`` when it was opened.

    Example:
        >>> for stream in client.streams:  # doctest: +SKIP
        ...     stream.stop()
    """

    def __init__(
        self,
        kind: str,
        topic: TopicName,
        subscription: str | None,
        begin_close: Callable[[bool], None],
        wait_closed: Callable[[float], None],
    ) -> None:
        self.kind = kind
        self.topic = topic
        self.subscription = subscription
        self.started = time.monotonic()
        self._begin_close = begin_close
        self._wait_closed = wait_closed

    def stop(self, timeout: float = 5.0) -> None:
        """Close its socket: a subscription is disposed (no terminal event), a producer closed.

        Returns within about ``timeout`` seconds whatever the server does.
        """
        self._begin_close(False)
        self._wait_closed(time.monotonic() + timeout)

    def __repr__(self) -> str:
        sub = f", subscription={self.subscription!r}" if self.subscription else ""
        return f"StreamHandle({self.kind}, {str(self.topic)!r}{sub})"
