"""When to try again after a dropped connection: capped exponential backoff with full jitter."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from rxstargate._config import backoff_delay, checked_backoff, checked_seconds
from rxstargate.exceptions import StargateConnectionError, StargateError

__all__ = ["Backoff", "reconnect"]

T = TypeVar("T")
log = logging.getLogger("rxstargate.reconnect")


@dataclass(frozen=True, slots=True)
class Backoff:
    """A reconnect policy, in seconds.

    The n-th delay (n from 0) is uniform in ``[delay * (1 - jitter), delay]`` where
    ``delay = min(cap, initial * factor ** n)``; attempts stop once ``give_up_after``
    seconds of delays have passed (None: never).

    Attributes:
        initial: the first delay.
        factor: growth per attempt.
        cap: the largest delay.
        jitter: the fraction of each delay that is random (0 to 1).
        give_up_after: total delay after which the connection is declared lost.

    Raises:
        ConfigurationError: for a bad setting, naming it.

    Example:
        >>> delays = list(Backoff(initial=0.1, cap=0.4, jitter=0.0, give_up_after=1.0).delays())
        >>> delays
        [0.1, 0.2, 0.4]
    """

    initial: float = 0.1
    factor: float = 2.0
    cap: float = 10.0
    jitter: float = 0.5
    give_up_after: float | None = 60.0

    def __post_init__(self) -> None:
        initial, factor, cap, jitter = checked_backoff(
            self.initial, self.factor, self.cap, self.jitter, zero_initial=False
        )
        give_up = self.give_up_after
        if give_up is not None:
            give_up = checked_seconds(give_up, "give_up_after", zero=True)
        for name, value in (
            ("initial", initial),
            ("factor", factor),
            ("cap", cap),
            ("jitter", jitter),
            ("give_up_after", give_up),
        ):
            object.__setattr__(self, name, value)

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The successive waits before each reconnect attempt."""
        rand = rng or random.Random()
        total = 0.0
        attempt = 0
        while True:
            delay = backoff_delay(self.initial, self.factor, self.cap, self.jitter, attempt, rand)
            if self.give_up_after is not None and total + delay > self.give_up_after:
                return
            total += delay
            attempt += 1
            yield delay


def reconnect(
    open_connection: Callable[[], T],
    policy: Backoff,
    stopped: threading.Event,
    what: str,
) -> T | None:
    """Call ``open_connection`` after each backoff delay until it succeeds.

    Returns None when ``stopped`` is set meanwhile.

    Raises:
        StargateError: at once when an attempt fails with a non-retriable error, or the
            last error when the policy gives up.
    """
    last: StargateError | None = None
    for delay in policy.delays():
        if stopped.wait(delay):
            return None
        try:
            return open_connection()
        except StargateError as exc:
            if not exc.retriable:
                raise
            log.info("reconnecting %s failed (%s); trying again", what, exc)
            last = exc
    if last is None:
        last = StargateConnectionError(f"gave up reconnecting {what}")
    raise last
