"""The client's half of WebSocket keepalive, shared by both connection types.

A connection pings when it has heard nothing for ``ping_interval`` and is dropped when the ping
goes unanswered for ``ping_timeout``; the client's keepalive thread calls :meth:`keepalive`.
"""

from __future__ import annotations

import logging
from typing import Protocol

from rxstargate._config import TransportConfig
from rxstargate._wsframes import OP_PING

log = logging.getLogger("rxstargate.transport")

#: A connection's states: open, closing (our close frame queued or sent), closed.
OPEN, CLOSING, CLOSED = 0, 1, 2


class _Pinged(Protocol):
    """What :class:`PingsWhenIdle` needs of the connection that uses it."""

    url: str
    _config: TransportConfig
    _state: int
    _last_seen: float  # updated on every frame received
    _ping_sent: float | None  # None once the pong came

    def drop(self, reason: str) -> None: ...

    def _control(self, opcode: int, data: bytes) -> None: ...


class PingsWhenIdle:
    """Mixin: ping an idle connection and drop it when the pong does not come."""

    _ping_sent: float | None

    def keepalive(self: _Pinged, now: float) -> None:
        """Queue a ping when idle; drop the connection when the last ping went unanswered."""
        if self._state != OPEN:
            return
        config = self._config
        sent = self._ping_sent
        if sent is not None:
            if now - sent > config.ping_timeout:
                log.warning(
                    "no answer from %s within %.1f s: dropping the connection",
                    self.url,
                    config.ping_timeout,
                )
                self.drop(f"no pong from {self.url} within {config.ping_timeout:.1f} s")
        elif now - self._last_seen >= config.ping_interval:
            self._ping_sent = now
            self._control(OP_PING, b"rxstargate")
