"""An App's handlers, wrapped: each call timed, redeliveries counted, results published.

The wrapper keeps the handler's shape (function, ``async def``, MessageHandler with a plain or
async ``handle``), so ``process`` runs it exactly as it would run the handler itself.
"""

from __future__ import annotations

import collections
import contextvars
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

from rxstargate._producer import Producer
from rxstargate.models import Message, OutgoingMessage
from rxstargate.operators import Leave, MessageHandler, Nack
from rxstargate.service._metrics import DurationHistogram

__all__ = ["HANDLING", "HandlerCounters", "instrument", "is_coroutine_callable"]

Handler = Callable[[Message[Any]], Any] | MessageHandler[Any]

#: Messages whose last call failed, remembered to tell a retry from a new delivery.
_REMEMBERED_FAILURES = 10_000

#: The owner (an App) whose handler the current thread or task is running, if any.
HANDLING: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "rxstargate_app_handling", default=None
)

_Call = tuple[float, contextvars.Token[object | None]]


def is_coroutine_callable(function: Any) -> bool:
    """True for a coroutine function, a partial of one, or an object whose ``__call__`` is one.

    The same test as ``rso.process`` makes, so that a wrapped handler runs as the handler would.
    """
    if inspect.iscoroutinefunction(function):
        return True
    if inspect.isfunction(function) or inspect.ismethod(function) or inspect.isclass(function):
        return False
    return inspect.iscoroutinefunction(getattr(function, "__call__", None))  # noqa: B004


class HandlerCounters:
    """What the wrapper measures for one stream: call durations and redeliveries.

    While a call runs, :data:`HANDLING` holds ``owner``.
    """

    def __init__(self, owner: object = None) -> None:
        self._owner = owner
        self.durations = DurationHistogram()
        self._lock = threading.Lock()
        self._redelivered = 0
        # id -> message (kept alive, so the id is not reused) for messages whose last call
        # failed: their next call is a retry in place, not a new delivery.
        self._failed: collections.OrderedDict[int, Message[Any]] = collections.OrderedDict()

        self.last_finished: Message[Any] | None = None  # the latest message handled in full

    @property
    def redelivered(self) -> int:
        """Messages that arrived with a redelivery count above 0."""
        with self._lock:
            return self._redelivered

    def calling(self, message: Message[Any]) -> _Call:
        """A call begins (in the thread or task that makes it); what :meth:`called` takes."""
        with self._lock:
            retry = self._failed.get(id(message)) is message
            if not retry and message.redelivery_count > 0:
                self._redelivered += 1
        return time.perf_counter(), HANDLING.set(self._owner)

    def called(self, message: Message[Any], call: _Call, ok: bool) -> None:
        """A call ended (``ok``: it returned)."""
        started, handling = call
        HANDLING.reset(handling)
        self.durations.observe(time.perf_counter() - started)
        with self._lock:
            if ok:
                self._failed.pop(id(message), None)
                return
            self._failed[id(message)] = message
            self._failed.move_to_end(id(message))
            while len(self._failed) > _REMEMBERED_FAILURES:
                self._failed.popitem(last=False)

    def finished(self, message: Message[Any]) -> None:
        """A call's work is done, its result published: the message is handled in full."""
        self.last_finished = message


def _output(result: Any) -> bool:
    """Whether a handler's result is something to publish."""
    return not (result is None or isinstance(result, Nack | Leave) or inspect.isawaitable(result))


def _publish(producer: Producer[Any], result: Any, message: Message[Any]) -> None:
    if isinstance(result, OutgoingMessage):
        producer.send(result)
    else:
        producer.send(result, key=message.key, properties=dict(message.properties) or None)


async def _apublish(producer: Producer[Any], result: Any, message: Message[Any]) -> None:
    if isinstance(result, OutgoingMessage):
        await producer.asend(result)
    else:
        await producer.asend(result, key=message.key, properties=dict(message.properties) or None)


def instrument(
    handler: Handler, counters: HandlerCounters, publish_to: Producer[Any] | None
) -> Handler:
    """``handler`` timed into ``counters`` and, with ``publish_to``, its results sent there.

    A result is sent with the input's key and properties (an ``OutgoingMessage`` as it is),
    and the call returns only once the broker stored it, so the input is acked after its
    output; a send that fails fails the call (retried, then settled by ``on_failure``).
    None, ``Nack()`` and ``Leave()`` publish nothing.
    """
    if isinstance(handler, MessageHandler):
        if is_coroutine_callable(handler.handle):
            return _AsyncStateful(handler, counters, publish_to)
        return _Stateful(handler, counters, publish_to)
    function: Callable[[Message[Any]], Any] = handler
    if is_coroutine_callable(function):

        async def run_async(message: Message[Any]) -> Any:
            started, ok = counters.calling(message), False
            try:
                result = await function(message)
                ok = True
            finally:
                counters.called(message, started, ok)
            if publish_to is not None and _output(result):
                await _apublish(publish_to, result, message)
            counters.finished(message)
            return result

        return run_async

    def run(message: Message[Any]) -> Any:
        started, ok = counters.calling(message), False
        try:
            result = function(message)
            ok = True
        finally:
            counters.called(message, started, ok)
        if publish_to is not None and _output(result):
            _publish(publish_to, result, message)
        counters.finished(message)
        return result

    return run


class _Stateful(MessageHandler[Any]):
    """A MessageHandler, instrumented."""

    def __init__(
        self,
        handler: MessageHandler[Any],
        counters: HandlerCounters,
        publish_to: Producer[Any] | None,
    ) -> None:
        self._handler = handler
        self._counters = counters
        self._publish_to = publish_to

    def init(self) -> Any:
        return self._handler.init()

    def handle(self, message: Message[Any], state: Any) -> tuple[Any, Any]:
        started, ok = self._counters.calling(message), False
        try:
            result, state = self._handler.handle(message, state)
            ok = True
        finally:
            self._counters.called(message, started, ok)
        if self._publish_to is not None and _output(result):
            _publish(self._publish_to, result, message)
        self._counters.finished(message)
        return result, state


class _AsyncStateful(_Stateful):
    """A MessageHandler whose ``handle`` is ``async def``, instrumented."""

    async def handle(self, message: Message[Any], state: Any) -> tuple[Any, Any]:  # type: ignore[override]
        started, ok = self._counters.calling(message), False
        try:
            result, state = await self._handler.handle(message, state)  # type: ignore[misc]
            ok = True
        finally:
            self._counters.called(message, started, ok)
        if self._publish_to is not None and _output(result):
            await _apublish(self._publish_to, result, message)
        self._counters.finished(message)
        return result, state
