"""Retry policies for handlers: how many attempts, which failures, and how long to wait."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from rxstargate.exceptions import ConfigurationError

__all__ = ["Retry"]


@dataclass(frozen=True, slots=True)
class Retry:
    """Try a failing handler again, in place, after a capped exponential backoff with jitter.

    Attributes:
        attempts: calls in all, the first included (``attempts=3``: two retries).
        initial: the first delay, in seconds.
        factor: growth per retry.
        cap: the largest delay.
        jitter: the fraction of each delay that is random (0 to 1).
        on: the exception types worth retrying; others fail at once.

    Example:
        >>> policy = Retry(attempts=4, initial=0.1, factor=2, jitter=0.0)
        >>> [policy.delay(n) for n in (1, 2, 3)]
        [0.1, 0.2, 0.4]
    """

    attempts: int = 3
    initial: float = 0.1
    factor: float = 2.0
    cap: float = 10.0
    jitter: float = 0.5
    on: tuple[type[BaseException], ...] = (Exception,)
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigurationError(f"attempts must be an int, not {self.attempts!r}")
        if self.attempts < 1:
            raise ConfigurationError("attempts must be at least 1")
        if self.initial < 0 or self.factor < 1 or self.cap < self.initial:
            raise ConfigurationError("retry needs initial >= 0, factor >= 1 and cap >= initial")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError("retry jitter must be between 0 and 1")

    def retries(self, error: BaseException, attempt: int) -> bool:
        """Whether a call that failed with ``error`` on ``attempt`` (from 1) is tried again."""
        return attempt < self.attempts and isinstance(error, self.on)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed ``attempt`` (from 1) before the next one."""
        base = min(self.cap, self.initial * self.factor ** (attempt - 1))
        if self.jitter:
            base *= 1 - self.jitter * self._rng.random()
        return base
