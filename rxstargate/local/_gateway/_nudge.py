"""When an idle Shared socket nudges pulsar-lite to dispatch again: ever more rarely.

pulsar-lite was seen to lose a wake-up on Shared subscriptions: now and then a consumer that
subscribed to a backlog, often right after another left, got nothing until the next flow command,
published message or consumer joining or leaving, which may never come (docs/local-pulsar.md says
what has been measured since). A Shared socket with credit to spare that receives nothing gives
the broker a nudge (a consumer joins and leaves) after KICK_FIRST_SECONDS of silence and then
ever more rarely (doubling, at most every KICK_MAX_SECONDS); any message starts over.
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
