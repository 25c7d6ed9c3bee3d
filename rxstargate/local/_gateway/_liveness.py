"""Finding sockets whose peer is gone, from what the kernel knows of each TCP connection.

The policy is in ``rxstargate.local._keepalive``. Here: TCP keepalive on each accepted socket,
and a watchdog that reads each connection's ``TCP_INFO`` (Linux) about once a second: when data
last came in, when new data last went out, and how many retransmissions or window probes in a
row went unanswered. Where ``TCP_INFO`` is not available only TCP keepalive applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import ServerConnection

from rxstargate.local._keepalive import Keepalive

# struct tcp_info: tcpi_retransmits and tcpi_probes are its 3rd and 4th bytes; tcpi_last_data_sent
# and tcpi_last_data_recv (milliseconds ago) are the u32s at offsets 44 and 52.
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_TCP_INFO_BYTES = 60

WATCH_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class TcpState:
    """What the kernel knows of one connection.

    Attributes:
        since_received: seconds since data last came from the peer (frames, pings, pongs).
        since_sent: seconds since the gateway last sent new data (not retransmissions or
            probes: a peer that does not read stops this clock once its window is full).
        unanswered: retransmissions or window probes in a row that the peer's host did not
            answer (its kernel answers them whether or not its program reads).
    """

    since_received: float
    since_sent: float
    unanswered: int


def tcp_state(sock: Any) -> TcpState | None:
    """The state of a connected TCP socket; None where the kernel does not tell (or it closed)."""
    if _TCP_INFO is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_BYTES)
    except (OSError, ValueError):  # ValueError: uvloop's socket of a closed transport
        return None
    if len(raw) < _TCP_INFO_BYTES:
        return None
    retransmits, probes = raw[2], raw[3]
    (last_sent,) = struct.unpack_from("I", raw, 44)
    (last_received,) = struct.unpack_from("I", raw, 52)
    return TcpState(last_received / 1000, last_sent / 1000, max(retransmits, probes))


def why_gone(state: TcpState, keepalive: Keepalive) -> tuple[str, bool] | None:
    """Why a connection should end, and whether to close it (True) or drop it (False).

    An idle session is closed as Jetty closes it for Pulsar: status 1001 with Jetty's reason.
    A host that answers nothing is dropped at once: there is nobody to close with.
    """
    if keepalive.idle_timeout is not None:
        idle = min(state.since_received, state.since_sent)
        if idle >= keepalive.idle_timeout:
            timeout_ms = round(keepalive.idle_timeout * 1000)
            return f"Idle timeout expired: {round(idle * 1000)}/{timeout_ms} ms", True
    if state.unanswered >= keepalive.max_unanswered:
        unanswered = f"{state.unanswered} retransmissions or window probes in a row"
        return f"the peer's host answered none of the last {unanswered}", False
    return None


def enable_tcp_keepalive(sock: Any, keepalive: Keepalive) -> None:
    """Turn on TCP keepalive with the given timings (those the platform has)."""
    idle, interval, count = keepalive.tcp_keepalive
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval)):
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
        if hasattr(socket, "TCP_KEEPCNT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)


class Watchdog:
    """Watches the gateway's connections and reports those whose peer is gone.

    Args:
        keepalive: the settings.
        on_gone: called on the event loop with a connection, the reason, and whether to close
            it with a close frame (True) or drop it (False).
    """

    def __init__(
        self, keepalive: Keepalive, on_gone: Callable[[ServerConnection, str, bool], None]
    ) -> None:
        self._keepalive = keepalive
        self._on_gone = on_gone
        self._connections: set[ServerConnection] = set()
        idle = keepalive.idle_timeout
        self.period = WATCH_SECONDS if idle is None else max(0.05, min(WATCH_SECONDS, idle / 10))

    def watch(self, connection: ServerConnection) -> None:
        """Turn TCP keepalive on for a new connection and watch it until :meth:`forget`."""
        sock = connection.transport.get_extra_info("socket")
        if sock is not None:
            enable_tcp_keepalive(sock, self._keepalive)
        self._connections.add(connection)

    def forget(self, connection: ServerConnection) -> None:
        """Stop watching a connection (it ended)."""
        self._connections.discard(connection)

    def check(self) -> None:
        """Look at every watched connection once; report those that are gone (and forget them)."""
        for connection in list(self._connections):
            sock = connection.transport.get_extra_info("socket")
            state = tcp_state(sock) if sock is not None else None
            verdict = why_gone(state, self._keepalive) if state is not None else None
            if verdict is not None:
                self._connections.discard(connection)
                self._on_gone(connection, *verdict)

    async def run(self) -> None:
        """Check every ``period`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.period)
            self.check()
