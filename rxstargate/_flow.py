"""How many messages may be in flight: the bounds of ``max_in_flight``, and consumers' credit.

``max_in_flight`` (producers and subscriptions alike) is defaulted and checked here only.

Credit: a pull-mode consumer holds two counts: ``unsettled`` (delivered, not yet acked or nacked)
and ``server_credit`` (permits granted and not yet used by a delivery). The invariant is
``unsettled + server_credit + owed <= max_in_flight`` where ``owed`` is credit earned by
settling but not yet sent back. Credit goes back in batches (one ``permit`` frame per
``batch`` settled messages) and at once whenever the server has no credit left, so a
pipeline that holds a few messages back (``buffer_with_count``) can never stall.

Not thread-safe by itself: the receiving core (``_receive_state``) owns it, under the
stream's lock.

Example:
    >>> credit = Credit(4, batch=2)
    >>> credit.initial()
    4
    >>> [credit.delivered() for _ in range(4)]
    [0, 0, 0, 0]
    >>> [credit.settled() for _ in range(4)]
    [1, 0, 2, 0]
"""

from __future__ import annotations

from rxstargate.exceptions import ConfigurationError

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "MAX_IN_FLIGHT", "Credit", "checked_max_in_flight"]

#: ``max_in_flight`` when none is given.
DEFAULT_MAX_IN_FLIGHT = 1000
#: The largest ``max_in_flight`` a producer or subscription accepts.
MAX_IN_FLIGHT = 100_000


def checked_max_in_flight(value: object) -> int:
    """``value`` as a ``max_in_flight``, or a ConfigurationError saying what it must be.

    Example:
        >>> checked_max_in_flight(500)
        500
        >>> checked_max_in_flight(0)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        rxstargate.exceptions.ConfigurationError: max_in_flight must be an int from 1 to ...
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_IN_FLIGHT:
        raise ConfigurationError(
            f"max_in_flight must be an int from 1 to {MAX_IN_FLIGHT}, not {value!r}"
        )
    return value


class Credit:
    """Credit accounting for one consumer socket."""

    __slots__ = ("_batch", "max_in_flight", "overdelivered", "owed", "server_credit", "unsettled")

    def __init__(self, max_in_flight: int, batch: int | None = None) -> None:
        """Start with nothing granted; ``batch`` defaults to a quarter of ``max_in_flight``.

        ``max_in_flight`` was checked by :func:`checked_max_in_flight`.
        """
        self.max_in_flight = max_in_flight
        self._batch = max(1, batch if batch is not None else max_in_flight // 4)
        self.unsettled = 0
        self.server_credit = 0
        self.owed = 0
        self.overdelivered = 0

    def initial(self) -> int:
        """The first permit to send on a fresh socket: the whole window."""
        grant = self.max_in_flight - self.unsettled - self.server_credit
        self.server_credit += grant
        self.owed = 0
        return grant

    def delivered(self) -> int:
        """Count one message received; return the permits to send now (often 0).

        A server sending beyond its credit is counted too. When the server's credit runs
        out while some is owed, the owed credit goes back at once.
        """
        self.unsettled += 1
        if self.server_credit > 0:
            self.server_credit -= 1
        else:
            self.overdelivered += 1
        if self.server_credit == 0 and self.owed:
            grant, self.owed = self.owed, 0
            self.server_credit += grant
            return grant
        return 0

    def settled(self) -> int:
        """Count one message acked or nacked; return the permits to send now (often 0)."""
        if self.unsettled == 0:
            return 0
        self.unsettled -= 1
        if self.overdelivered:
            # A message the server sent without credit earns none back.
            self.overdelivered -= 1
            return 0
        self.owed += 1
        if self.owed >= self._batch or self.server_credit == 0:
            grant, self.owed = self.owed, 0
            self.server_credit += grant
            return grant
        return 0
