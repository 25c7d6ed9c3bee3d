"""Sinks: Observers that end a pipeline of Messages."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from reactivex import abc

from rxstargate.exceptions import AckError
from rxstargate.models import Message

__all__ = ["Acknowledger", "acknowledger"]

log = logging.getLogger("rxstargate.sinks")


class Acknowledger(abc.ObserverBase[Message[Any]]):
    """The observer :func:`acknowledger` returns.

    Attributes:
        acked: messages acked so far.
        failed: messages whose socket was gone (AckError, logged; the broker redelivers them).
    """

    def __init__(
        self,
        on_error: Callable[[Exception], None] | None,
        on_completed: Callable[[], None] | None,
    ) -> None:
        self._on_error = on_error
        self._on_completed = on_completed
        self.acked = 0
        self.failed = 0

    def on_next(self, value: Message[Any]) -> None:
        try:
            value.ack()
        except AckError as exc:
            self.failed += 1
            log.warning("%s", exc)
        else:
            self.acked += 1

    def on_error(self, error: Exception) -> None:
        if self._on_error is not None:
            self._on_error(error)
        else:
            log.error("stream ended with an error: %r", error)

    def on_completed(self) -> None:
        if self._on_completed is not None:
            self._on_completed()


def acknowledger(
    *,
    on_error: Callable[[Exception], None] | None = None,
    on_completed: Callable[[], None] | None = None,
) -> Acknowledger:
    """An Observer that acks every Message it receives, on the thread that delivers it.

    A message whose socket is gone (AckError) is logged and counted, not raised: the broker
    redelivers it. ``on_error`` defaults to logging the error.

    Marble::

        messages: --a--b--c--|
        acked:    --a--b--c--|

    Args:
        on_error: called with the error that ended the stream.
        on_completed: called when the stream completes.

    Returns:
        The observer; its ``acked`` and ``failed`` attributes count messages.

    Example:
        >>> topic.observe("billing").subscribe(rs.acknowledger())  # doctest: +SKIP
    """
    return Acknowledger(on_error, on_completed)
