"""When an idle socket nudges pulsar-lite to dispatch again: ever more rarely while it stays idle.

pulsar-lite loses wake-ups: its Shared dispatcher drops a dispatch request that arrives while it
is dispatching (now and then a consumer that subscribes to a backlog, often right after another
left, gets nothing), and every dispatcher stops when its connection's write buffer reaches the
broker's high-water mark (a batch of large messages did, every time, until local Pulsar raised
the mark above any batch: see _broker, after which 100 Shared subscriptions of one topic on one
connection still stalled without nudges); both wait for the next flow command, published message
or consumer joining or leaving, which may never come. A socket with credit to spare that
receives nothing gives the broker a nudge (a consumer joins and leaves; a reader opens again
where it was) after KICK_FIRST_SECONDS of silence and then ever more rarely (doubling, at most
every KICK_MAX_SECONDS); any message starts over.
"""

from __future__ import annotations

from collections.abc import Callable

KICK_FIRST_SECONDS = 1.0
KICK_MAX_SECONDS = 30.0


class NudgeSchedule:
    """Says when an idle socket is due its next nudge. Used on its receive thread only."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._quiet_since: float | None = None
        self._after = KICK_FIRST_SECONDS

    def due(self) -> float | None:
        """Called when a receive found nothing: the seconds of silence that made a nudge due now,
        or None when none is."""
        now = self._clock()
        if self._quiet_since is None:
            self._quiet_since = now
            return None
        if now - self._quiet_since < self._after:
            return None
        waited = self._after
        self._quiet_since = now
        self._after = min(self._after * 2, KICK_MAX_SECONDS)
        return waited

    def busy(self) -> None:
        """A message arrived: the next silence starts over."""
        self._quiet_since = None
        self._after = KICK_FIRST_SECONDS
