"""How the gateway lets go of peers that are gone, without dropping peers that are slow.

A peer that closes its socket, or whose socket is reset, is released at once: its kernel says
so. The others are found the way Pulsar's WebSocket service finds them, or by what a peer's
kernel answers whether or not its program reads, never by whether the program answers a ping:

* a session that has neither received nor sent any data for ``idle_timeout`` (300 s, Pulsar's
  ``webSocketSessionIdleTimeoutMillis``) is closed, as Jetty closes it for Pulsar: this is what
  ends a peer whose program hangs, or one behind a proxy that still holds its connection. A
  peer that keeps nothing flowing for that long (no messages, no acks, no pings) is closed too,
  on Pulsar as here; rxstargate's client pings every 30 s of silence;
* TCP keepalive on every accepted socket (probes after ``tcp_keepalive[0]`` s of silence, every
  ``tcp_keepalive[1]`` s, ``tcp_keepalive[2]`` unanswered ones end it): a peer whose host
  vanished (a crash, a partition, a NAT that forgot the connection) is released in about 11 s;
* a socket whose data the peer's host has not acknowledged through ``max_unanswered``
  consecutive retransmissions or window probes (about 13 s) is dropped: the write timeout of a
  host that vanished while the gateway was sending. A slow reader's host answers window probes,
  so a program that does not read for minutes keeps its socket (until ``idle_timeout``).

Pings are off, as in Pulsar (``webSocketPingDurationSeconds``); with ``ping_interval`` set they
are sent and answered pongs are not required, unless ``ping_timeout`` is set too (a socket
that leaves a ping unanswered that long is dropped: most WebSocket libraries answer pings only
while the program reads, so this drops slow readers, and Pulsar has no such setting).
"""

from __future__ import annotations

from dataclasses import dataclass

IDLE_TIMEOUT = 300.0
CLOSE_TIMEOUT = 2.0
TCP_KEEPALIVE = (5, 2, 3)
MAX_UNANSWERED = 6


@dataclass(frozen=True, slots=True)
class Keepalive:
    """The gateway's settings for finding peers that are gone (see the module docstring).

    Attributes:
        idle_timeout: seconds without data either way before a session is closed (None: never).
        ping_interval: seconds between pings (None: no pings).
        ping_timeout: seconds a ping may stay unanswered before the socket is dropped (None:
            never; needs ``ping_interval``).
        tcp_keepalive: TCP keepalive's idle seconds, probe interval and probe count.
        max_unanswered: consecutive unanswered retransmissions or window probes that end a
            socket.
        close_wait: the most seconds a close waits for the peer's answer to its close frame
            (a peer that is gone never answers; tests of such peers make it short).
    """

    idle_timeout: float | None = IDLE_TIMEOUT
    ping_interval: float | None = None
    ping_timeout: float | None = None
    tcp_keepalive: tuple[int, int, int] = TCP_KEEPALIVE
    max_unanswered: int = MAX_UNANSWERED
    close_wait: float = CLOSE_TIMEOUT

    @property
    def close_timeout(self) -> float:
        """How long to wait for a peer's answer to a close frame."""
        return min(self.close_wait, self.ping_timeout or self.close_wait)

    def arguments(self) -> list[str]:
        """The gateway process's command-line options for these settings."""
        return [
            "--idle-timeout",
            str(self.idle_timeout or 0),
            "--ping-interval",
            str(self.ping_interval or 0),
            "--ping-timeout",
            str(self.ping_timeout or 0),
            "--tcp-keepalive",
            ",".join(str(value) for value in self.tcp_keepalive),
            "--max-unanswered",
            str(self.max_unanswered),
            "--close-wait",
            str(self.close_wait),
        ]

    @classmethod
    def from_arguments(
        cls,
        idle_timeout: float,
        ping_interval: float,
        ping_timeout: float,
        tcp_keepalive: str,
        max_unanswered: int,
        close_wait: float = CLOSE_TIMEOUT,
    ) -> Keepalive:
        """The settings :meth:`arguments` wrote (0 meaning None)."""
        idle, interval, count = (int(part) for part in tcp_keepalive.split(","))
        return cls(
            idle_timeout=idle_timeout or None,
            ping_interval=ping_interval or None,
            ping_timeout=ping_timeout or None,
            tcp_keepalive=(idle, interval, count),
            max_unanswered=max_unanswered,
            close_wait=close_wait,
        )
