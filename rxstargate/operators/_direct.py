"""One subscription to a ``process`` that calls its handler where each message arrives.

A plain handler at concurrency 1 with no timeout and no retry (``process``'s defaults) runs on
the delivering thread, as ``ops.map`` would call it, and its outcome is final at once: the call
starts as soon as its message comes, nothing waits behind it (the upstream delivers one
message at a time), no timer fires and no retry follows. What the lanes of a
:class:`~rxstargate.operators._run.Run` would decide there never varies, and their
bookkeeping would cost more than the rest of the stage, so :class:`DirectRun` has none: it
calls, settles and emits in one step. Its emissions all happen inside upstream events, which
the upstream serializes already, so it emits through an ``InlineObserver``, without a lock.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from reactivex import abc

from rxstargate.exceptions import AckError, SchemaError
from rxstargate.models import Message
from rxstargate.operators._emit import InlineObserver
from rxstargate.operators._failure import not_a_message, settle_failure
from rxstargate.operators._handlers import AWAITABLE_BY_TYPE, HandlerCall, awaitable, not_awaited
from rxstargate.operators._outcomes import Leave, Nack, Processed, processed
from rxstargate.operators._stats import UNCOUNTED, ProcessingStats, Uncounted

__all__ = ["DirectRun"]

log = logging.getLogger("rxstargate.operators")

_OUTCOMES = (Nack, Leave)  # made once: ``Nack | Leave`` builds a new union at each call


class DirectRun:
    """The state of one subscription to a ``process`` that calls its handler inline.

    Args:
        call: the handler, as ``process`` calls it.
        policy: ``on_failure``, checked.
        stats: the counters to update, if any.
        observer: the downstream.
    """

    def __init__(
        self,
        call: HandlerCall,
        policy: Any,
        stats: ProcessingStats | None,
        observer: abc.ObserverBase[Processed[Any]],
    ) -> None:
        self._handle = call.call
        # A plain function is called here, not through ``call.call``: a call less a message.
        self._plain = call.plain
        self._policy = policy
        # Nobody reads counters that were not asked for: counting them would cost a lock each.
        self._stats: ProcessingStats | Uncounted = stats or UNCOUNTED
        self._counting = stats is not None  # the per-message path skips the calls
        # What the observer raises ends the stream there: nothing is handled after it.
        self._observer = InlineObserver(observer, on_raised=self.dispose)
        self._ended = False  # completed, failed or disposed: messages are left alone

    def on_next(self, message: Message[Any]) -> None:
        """Call the handler for ``message`` and settle or emit what it returned.

        A stop during the call (dispose, or the stream's end) leaves its message unsettled,
        counted out of ``received`` again, as a :class:`Run` leaves what it drops.
        """
        if not isinstance(message, Message):
            self.on_error(not_a_message(message))
            return
        if self._ended:
            return  # after the end: left alone
        if message.schema_error is not None:
            self._refuse(message)
            return
        if self._counting:
            self._stats.add("received")
        try:
            function = self._plain
            if function is None:
                result = self._handle(message, 0)
            else:  # what HandlerCall.call does for it
                result = function(message)
                if AWAITABLE_BY_TYPE.get(type(result)) is not False and awaitable(result):
                    raise not_awaited(result, message)
        except Exception as exc:
            if self._ended:
                self._stats.add("received", -1)
            else:
                self._failed(message, exc)
            return
        if self._ended:
            self._stats.add("received", -1)
            return
        if self._counting:
            self._stats.add("processed")
        if not isinstance(result, _OUTCOMES):
            self._observer.on_next(processed(message, result, True, 1))
        elif isinstance(result, Leave):
            self._observer.on_next(processed(message, result.result, False, 1))
        else:
            with contextlib.suppress(AckError):
                message.nack()

    def on_error(self, error: Exception) -> None:
        self._ended = True
        self._observer.on_error(error)

    def on_completed(self) -> None:
        if self._ended:
            return  # stopped: nothing follows
        self._ended = True
        self._observer.on_completed()

    def dispose(self) -> None:
        self._ended = True

    def drop_delayed(self) -> None:
        """Nothing waits for a retry here: there is nothing to leave."""

    def drop_waiting(self) -> None:
        """Nothing waits for a call here (each starts as its message comes): nothing to leave."""

    def _refuse(self, message: Message[Any]) -> None:
        """A payload that does not match the schema: settled at once (retrying cannot help)."""
        self._stats.add("received")
        error = SchemaError(
            f"message {message.message_id} does not match the schema: {message.schema_error}",
            message_id=str(message.message_id),
        )
        self._failed(message, error)

    def _failed(self, message: Message[Any], error: BaseException) -> None:
        self._stats.add("failed")
        if self._policy == "error":
            self.on_error(error if isinstance(error, Exception) else RuntimeError(error))
            return
        log.info("message %s failed after 1 attempt(s): %r", message.message_id, error)
        settle_failure(self._policy, message, error, 1, self._dead_lettered)

    def _dead_lettered(self) -> None:
        self._stats.add("dead_lettered")
