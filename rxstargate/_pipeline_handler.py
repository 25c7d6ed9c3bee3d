"""Marking a pipeline's handler calls, so that ``stop()`` and ``wait()`` know their caller.

A pipeline's ``stop()`` called from its own handler must not wait for the drain (which
cannot end while its caller runs), and ``wait()`` from there must refuse at once. The
handler is wrapped so that each call runs with :data:`HANDLING` set to the pipeline's token.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from rxstargate.models import Message
from rxstargate.operators._handlers import Handler, is_coroutine_callable
from rxstargate.operators._outcomes import MessageHandler

__all__ = ["HANDLING", "marked"]

#: The pipeline (its token) whose handler the current thread or task is running.
HANDLING: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "rxstargate_pipeline_handling", default=None
)


class _MarkedHandler(MessageHandler[Any]):
    """A MessageHandler whose calls are marked as this pipeline's."""

    def __init__(self, handler: MessageHandler[Any], token: object) -> None:
        self._handler = handler
        self._token = token

    def init(self) -> Any:
        return self._handler.init()

    def handle(self, message: Message[Any], state: Any) -> tuple[Any, Any]:
        reset = HANDLING.set(self._token)
        try:
            return self._handler.handle(message, state)
        finally:
            HANDLING.reset(reset)


class _MarkedAsyncHandler(_MarkedHandler):
    async def handle(self, message: Message[Any], state: Any) -> tuple[Any, Any]:  # type: ignore[override]
        reset = HANDLING.set(self._token)
        try:
            outcome: tuple[Any, Any] = await self._handler.handle(message, state)  # type: ignore[misc]
            return outcome
        finally:
            HANDLING.reset(reset)


def marked(handler: Handler, token: object) -> Handler:
    """``handler``, its calls run with :data:`HANDLING` set to ``token``.

    Async stays async (the mark lives in the handler's task), so ``process`` runs it as
    before; what ``process`` refuses is passed through for it to refuse.
    """
    if isinstance(handler, MessageHandler):
        if is_coroutine_callable(handler.handle):
            return _MarkedAsyncHandler(handler, token)
        return _MarkedHandler(handler, token)
    if not callable(handler):
        return handler
    function: Callable[[Message[Any]], Any] = handler
    if is_coroutine_callable(function):

        async def run_async(message: Message[Any]) -> Any:
            reset = HANDLING.set(token)
            try:
                return await function(message)
            finally:
                HANDLING.reset(reset)

        return run_async

    def run(message: Message[Any]) -> Any:
        reset = HANDLING.set(token)
        try:
            return function(message)  # an awaitable returned here is process()'s to refuse
        finally:
            HANDLING.reset(reset)

    return run
