"""What a handler returns and what ``process`` emits: outcomes, processed items, handlers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rxstargate._unfrozen import unfrozen_twin
from rxstargate.models import Message

__all__ = ["Leave", "MessageHandler", "Nack", "Processed"]

R = TypeVar("R")
S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Leave:
    """Return ``Leave(result)`` to pass the message on unsettled: a later stage settles it.

    The :func:`~rxstargate.acknowledger` leaves such items alone (stargate's ``:continue``).
    """

    result: Any = None


@dataclass(frozen=True, slots=True)
class Nack:
    """Return ``Nack()`` to have the message redelivered; nothing is emitted for it."""

    reason: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Processed(Generic[R]):
    """A message whose handling succeeded, with the handler's result.

    Attributes:
        message: the input message.
        result: what the handler returned (``Leave(x)`` unwrapped to ``x``).
        settle: False when the handler said :class:`Leave`; the acknowledger then skips it.
        attempts: how many calls it took (1 without retries).
    """

    message: Message[Any]
    result: R
    settle: bool = True
    attempts: int = 1

    def ack(self) -> None:
        """Acknowledge the input message."""
        self.message.ack()

    def nack(self) -> None:
        """Negatively acknowledge the input message."""
        self.message.nack()


_FIELDS = ("message", "result", "settle", "attempts")  # Processed's, in order


_new = object.__new__
_Twin = unfrozen_twin(Processed, _FIELDS)
_set_message, _set_result, _set_settle, _set_attempts = (
    Processed.__dict__[name].__set__ for name in _FIELDS
)


def processed(message: Message[Any], result: R, settle: bool, attempts: int) -> Processed[R]:
    """``Processed(message, result, settle, attempts)``, made in about a third of the time.

    A frozen dataclass sets each field through ``object.__setattr__``; this fills a writable
    twin's slots and gives it Processed's class (0.35 against 0.56 us; through Processed's
    own slot descriptors where the layouts ever differ).
    """
    item: Any
    if _Twin is not None:
        item = _new(_Twin)
        item.message = message
        item.result = result
        item.settle = settle
        item.attempts = attempts
        item.__class__ = Processed
        return item  # type: ignore[no-any-return]
    item = _new(Processed)
    _set_message(item, message)
    _set_result(item, result)
    _set_settle(item, settle)
    _set_attempts(item, attempts)
    return item  # type: ignore[no-any-return]


class MessageHandler(ABC, Generic[S]):
    """A stateful handler, like stargate's MessageHandler behaviour.

    ``process`` calls :meth:`init` once per worker (each of its ``concurrency`` workers keeps
    its own state, as each of stargate's processors does) and then :meth:`handle` for each
    message that worker takes, with the state it returned last time.

    Example:
        >>> class Counter(MessageHandler[int]):
        ...     def init(self) -> int:
        ...         return 0
        ...     def handle(self, message, state):
        ...         return state + 1, state + 1   # (result, new state)
    """

    @abstractmethod
    def init(self) -> S:
        """The initial state of one worker."""

    @abstractmethod
    def handle(self, message: Message[Any], state: S) -> tuple[Any, S]:
        """Handle one message: return ``(result or outcome, new state)``."""
