"""Calling a ``process`` handler: plain, coroutine or MessageHandler, with the misuse it refuses."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any

from rxstargate.exceptions import ConfigurationError
from rxstargate.models import Message
from rxstargate.operators._lanes import NotRetriable
from rxstargate.operators._outcomes import Leave, MessageHandler

__all__ = [
    "AWAITABLE_BY_TYPE",
    "Handler",
    "HandlerCall",
    "LeaveRefusedError",
    "NotAwaitedError",
    "awaitable",
    "is_coroutine_callable",
    "leave_refused",
    "not_awaited",
]

Handler = Callable[[Message[Any]], Any] | MessageHandler[Any]


class NotAwaitedError(NotRetriable, TypeError):
    """A plain handler returned an awaitable: its work never ran (retrying cannot help)."""


class LeaveRefusedError(NotRetriable, ConfigurationError):
    """A consume() handler returned ``Leave``: no later stage would settle it (never retried)."""


def is_coroutine_callable(function: Any) -> bool:
    """True for a coroutine function, a partial of one, or an object whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(function):
        return True
    if inspect.isfunction(function) or inspect.ismethod(function) or inspect.isclass(function):
        return False
    return inspect.iscoroutinefunction(getattr(function, "__call__", None))  # noqa: B004


#: Whether instances of a type can be awaited, by type: ``inspect.isawaitable`` costs as
#: much as a trivial handler, and a handler returns few types. A caller that finds False
#: here for a result's type knows without a call that it is no awaitable.
AWAITABLE_BY_TYPE: dict[type, bool] = {}


def awaitable(value: Any) -> bool:
    """``inspect.isawaitable(value)``, remembered per type."""
    kind = type(value)
    known = AWAITABLE_BY_TYPE.get(kind)
    if known is None:
        if kind is types.GeneratorType:  # a generator-based coroutine or not: per instance
            return inspect.isawaitable(value)
        known = inspect.isawaitable(value)
        if len(AWAITABLE_BY_TYPE) < 1000:
            AWAITABLE_BY_TYPE[kind] = known
    return known


def not_awaited(result: Any, message: Message[Any]) -> NotAwaitedError:
    """The error for a plain handler's awaitable ``result``, closing it unrun if it can."""
    if inspect.iscoroutine(result):
        result.close()  # never run: no "coroutine was never awaited" warning either
    return NotAwaitedError(
        f"the handler returned {type(result).__name__} {result!r:.80} for message"
        f" {message.message_id} instead of a result: it is not an async def function, so"
        " process() did not await it and its work never ran; make the handler itself"
        " async def (or an object whose __call__ is async def)"
    )


def leave_refused(message: Message[Any]) -> LeaveRefusedError:
    """The error for a ``Leave`` where nothing after the handler would settle the message."""
    return LeaveRefusedError(
        f"the handler returned Leave(...) for message {message.message_id}, but in consume()"
        " nothing after the handler would ever settle it: return the result itself (acked)"
        " or Nack(), or use observe().pipe(process(...), ...) with a stage that settles it"
    )


class HandlerCall:
    """Calls the user's handler for one message on one worker, as ``process`` allows it.

    A :class:`MessageHandler` keeps one state per worker (``init()`` on a worker's first
    call). A plain handler's awaitable is refused (:class:`NotAwaitedError`), and so is a
    ``Leave`` when ``refuse_leave`` (:class:`LeaveRefusedError`). Workers are never used by
    two calls at once, so their states need no lock.
    """

    __slots__ = (
        "_function",
        "_handler",
        "_refuse_leave",
        "_states",
        "is_async",
        "plain",
        "stateful",
    )

    def __init__(self, handler: Handler, *, refuse_leave: bool = False) -> None:
        self._handler = handler
        self._refuse_leave = refuse_leave
        self.stateful = isinstance(handler, MessageHandler)
        self._function: Callable[..., Any] = (
            handler.handle if isinstance(handler, MessageHandler) else handler
        )
        self.is_async = is_coroutine_callable(self._function)
        self._states: dict[int, Any] = {}
        #: The handler itself when :meth:`call` only calls it and refuses an awaitable result
        #: (a plain function, Leave allowed), for a caller that does both inline; else None.
        self.plain: Callable[..., Any] | None = (
            None if self.stateful or refuse_leave or self.is_async else self._function
        )

    def call(self, message: Message[Any], worker: int) -> Any:
        """Call a plain handler (or a plain MessageHandler); what it returns or raises."""
        if self.stateful:
            returned = self._function(message, self._state(worker))
            if awaitable(returned):
                raise not_awaited(returned, message)
            result, self._states[worker] = returned
        else:
            result = self._function(message)
        if AWAITABLE_BY_TYPE.get(type(result)) is not False and awaitable(result):
            raise not_awaited(result, message)
        if self._refuse_leave and isinstance(result, Leave):
            raise leave_refused(message)
        return result

    async def call_async(self, message: Message[Any], worker: int) -> Any:
        """Await a coroutine (or stateful coroutine) handler; what it returns or raises."""
        if self.stateful:
            result, self._states[worker] = await self._function(message, self._state(worker))
        else:
            result = await self._function(message)
        if self._refuse_leave and isinstance(result, Leave):
            raise leave_refused(message)
        return result

    def _state(self, worker: int) -> Any:
        states = self._states
        if worker in states:
            return states[worker]
        handler: Any = self._handler
        return handler.init()
