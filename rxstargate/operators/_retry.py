"""Retry policies for handlers: how many attempts, which failures, and how long to wait."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

from rxstargate._config import backoff_delay, checked_backoff
from rxstargate.exceptions import ConfigurationError

__all__ = ["Retry"]


@dataclass(frozen=True, slots=True)
class Retry:
    """Try a failing handler again, in place, after a capped exponential backoff with jitter.

    Attributes:
        attempts: calls in all, the first included (``attempts=3``: two retries).
        initial: the first delay, in seconds (or a timedelta; stored as seconds).
        factor: growth per retry.
        cap: the largest delay, in seconds (or a timedelta; stored as seconds).
        jitter: the fraction of each delay that is random (0 to 1).
        on: the exception types worth retrying (one class or a tuple); others fail at once.

    Raises:
        ConfigurationError: for a bad argument, naming it.

    Example:
        >>> policy = Retry(attempts=4, initial=0.1, factor=2, jitter=0.0)
        >>> [policy.delay(n) for n in (1, 2, 3)]
        [0.1, 0.2, 0.4]
    """

    attempts: int = 3
    initial: float | timedelta = 0.1
    factor: float = 2.0
    cap: float | timedelta = 10.0
    jitter: float = 0.5
    on: tuple[type[BaseException], ...] | type[BaseException] = (Exception,)
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigurationError(f"attempts must be an int, not {self.attempts!r}")
        if self.attempts < 1:
            raise ConfigurationError("attempts must be at least 1")
        initial, factor, cap, jitter = checked_backoff(
            self.initial, self.factor, self.cap, self.jitter, zero_initial=True
        )
        on = (self.on,) if isinstance(self.on, type) else self.on
        if not (
            isinstance(on, tuple)
            and on
            and all(isinstance(kind, type) and issubclass(kind, BaseException) for kind in on)
        ):
            raise ConfigurationError(
                f"on must be an exception class or a tuple of them, not {self.on!r}"
            )
        for name, value in (
            ("initial", initial),
            ("cap", cap),
            ("factor", factor),
            ("jitter", jitter),
            ("on", on),
        ):
            object.__setattr__(self, name, value)

    def retries(self, error: BaseException, attempt: int) -> bool:
        """Whether a call that failed with ``error`` on ``attempt`` (from 1) is tried again."""
        return attempt < self.attempts and isinstance(error, self.on)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed ``attempt`` (from 1) before the next one."""
        initial, cap = cast(float, self.initial), cast(float, self.cap)
        return backoff_delay(initial, self.factor, cap, self.jitter, attempt - 1, self._rng)
