"""How the gateway finds sockets whose peer vanished without closing (a crash, a partition).

Such a half-open socket would hold its broker consumer for good: its Exclusive subscription and
the messages it was given. The gateway pings every socket; a peer that does not answer within
``ping_timeout`` is dropped, and its close handshake is waited for at most ``close_timeout``:
all in all at most ``ping_interval + ping_timeout + close_timeout`` after the peer went silent.
(Pulsar's own proxy relies on Jetty's 5-minute idle timeout instead.)
"""

from __future__ import annotations

from dataclasses import dataclass

PING_INTERVAL = 4.0
PING_TIMEOUT = 4.0
CLOSE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Keepalive:
    """How the gateway finds peers that vanished: pings, and how long it waits for answers."""

    ping_interval: float | None = PING_INTERVAL
    ping_timeout: float | None = PING_TIMEOUT

    @property
    def close_timeout(self) -> float:
        """How long to wait for a peer's close frame: at most CLOSE_TIMEOUT."""
        return min(CLOSE_TIMEOUT, self.ping_timeout or CLOSE_TIMEOUT)

    def arguments(self) -> list[str]:
        """The gateway process's command-line options for these settings."""
        return [
            "--ping-interval",
            str(self.ping_interval or 0),
            "--ping-timeout",
            str(self.ping_timeout or 0),
            "--close-timeout",
            str(self.close_timeout),
        ]
