"""``filter``: drop items by a predicate, settling what it drops so no credit leaks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from reactivex import Observable, abc

from rxstargate.exceptions import AckError, ConfigurationError
from rxstargate.models import Message, message_in
from rxstargate.streams import Stream

__all__ = ["filter", "message_of"]

T = TypeVar("T")


def message_of(item: Any) -> Message[Any]:
    """The message an item stands for: a Message itself or a processed item's message."""
    message = message_in(item)
    if message is None:
        raise ConfigurationError(
            f"expected a Message or a processed item, not {type(item).__name__}"
        )
    return message


def filter(
    predicate: Callable[[T], bool], *, settle: Literal["ack", "nack"] = "ack"
) -> Callable[[Observable[T]], Stream[T]]:
    """Keep the items for which ``predicate`` is true; ack (or nack) the ones it drops.

    RxPY's own ``ops.filter`` drops messages without settling them, so a consumer stops for
    good once ``max_in_flight`` were dropped; this one settles each dropped message at once.

    Marble::

        messages:  --a--b--c--|
        filter:    --a-----c--|    (b acked)

    Args:
        predicate: called with each Message or processed item.
        settle: ``"ack"`` (it is done with) or ``"nack"`` (redeliver it, maybe elsewhere).

    Example:
        >>> stream.pipe(filter(lambda m: m.key == "eu")).subscribe(rs.acknowledger())  # doctest: +SKIP
    """  # noqa: E501
    if not callable(predicate):
        raise ConfigurationError(f"predicate must be callable, not {predicate!r}")
    if settle not in ("ack", "nack"):
        raise ConfigurationError(f"settle must be 'ack' or 'nack', not {settle!r}")

    def operator(source: Observable[T]) -> Stream[T]:
        def subscribe(
            observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(item: T) -> None:
                try:
                    keep = predicate(item)
                except Exception as exc:
                    observer.on_error(exc)
                    return
                if keep:
                    observer.on_next(item)
                    return
                message = message_of(item)
                with contextlib.suppress(AckError):  # a dead socket: the broker redelivers
                    if settle == "ack":
                        message.ack()
                    else:
                        message.nack()

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return Stream(subscribe)

    return operator
