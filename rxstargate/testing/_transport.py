"""The client's end of an in-memory socket: a :class:`~rxstargate.Transport` with no network.

Frames the client sends reach the broker at once, on the sending thread (``send`` never blocks
on anything but the broker's lock); frames the broker writes wait in an inbox until the
client's receive thread takes them. ``recv`` waits on a condition, waking every quarter of a
second to look at the socket's state as the websocket transport does. How a socket ends
follows the websocket transport:

- the client closes it (``close``): what is in the inbox is still read, then ``recv`` returns
  None; ``abort`` and ``release`` end it at once;
- the server closes it (``server_close``): what is in the inbox is read first, then ``recv``
  raises the :class:`~rxstargate.ConnectionClosedError` of that close code;
- the network drops it (``cut``, or the client's ``drop``): what was in flight is lost and
  ``recv`` raises at once; frames sent meanwhile are reported lost to their ``on_lost``.

Callbacks (``on_lost``, ``on_closed``) run on the client's threads, never under a lock.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Protocol

from rxstargate._seam import LostCallback, Transport, close_error
from rxstargate.exceptions import ConnectionClosedError, StargateConnectionError

__all__ = ["MemoryTransport", "ServerSide"]

log = logging.getLogger("rxstargate.testing")

_TICK = 0.25  # as the websocket transport: blocked reads look at the state this often
_OPEN, _CLOSING, _CLOSED = 0, 1, 2


class ServerSide(Protocol):
    """What the broker attaches to a socket."""

    def on_text(self, text: str) -> bool:
        """Handle one frame from the client; False when it was lost (the socket dropped)."""

    def on_gone(self) -> None:
        """The client closed or abandoned the socket."""


class MemoryTransport:
    """One in-memory socket, client side. Create it with ``MemoryPulsar.connect``."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.on_closed: Callable[[Transport], None] | None = None
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._inbox: collections.deque[str] = collections.deque()
        self._state = _OPEN
        self._server: ServerSide | None = None
        self._ending: ConnectionClosedError | None = None  # raised by recv, once
        self._discard = False  # the network dropped: what was in flight is gone
        self._lost: list[tuple[LostCallback, str | bytes, str]] = []
        self._closed_told = False

    def attach(self, server: ServerSide) -> None:
        """Bind the broker's side (once, before the client gets the transport)."""
        self._server = server

    @property
    def url(self) -> str:
        """The endpoint's URL (without a token)."""
        return self._url

    @property
    def closed(self) -> bool:
        """True once the client closed, aborted or dropped the socket."""
        return self._state != _OPEN

    # -- the client's side -------------------------------------------------------------------

    def send(
        self, text: str | bytes, *, urgent: bool = True, on_lost: LostCallback | None = None
    ) -> None:
        """Hand one frame to the broker (``urgent`` makes no difference in memory).

        Raises:
            StargateConnectionError: when the socket is closing or gone.
        """
        with self._lock:
            if self._state != _OPEN:
                raise StargateConnectionError(f"the connection to {self._url} is closed")
            server = self._server
            if server is None:  # the server closed it, or the network dropped it
                if self._discard and on_lost is not None:
                    self._lost.append((on_lost, text, f"the connection to {self._url} dropped"))
                    self._ready.notify_all()
                return
        frame = text if isinstance(text, str) else text.decode("utf-8", "replace")
        if not server.on_text(frame) and on_lost is not None:
            with self._lock:
                self._lost.append((on_lost, text, f"the connection to {self._url} dropped"))
                self._ready.notify_all()

    def recv(self) -> str | None:
        """The next frame, or None once closed.

        Raises:
            ConnectionClosedError: when the server closed the socket or the network dropped it.
        """
        while True:
            texts = self._take(1)
            if texts is None or texts:
                return texts[0] if texts else None

    def recv_batch(self) -> list[str] | None:
        """Every frame waiting, waiting only when there is none; None once closed."""
        while True:
            texts = self._take(None)
            if texts is None or texts:
                return texts

    def _take(self, most: int | None) -> list[str] | None:
        """Up to ``most`` frames; [] after running callbacks (call again). Raises the end."""
        with self._lock:
            while not (self._inbox or self._lost or self._ending or self._state != _OPEN):
                self._ready.wait(_TICK)
            lost, self._lost = self._lost, []
            if not lost and self._inbox and not self._discard:
                count = len(self._inbox) if most is None else most
                return [self._inbox.popleft() for _ in range(count)]
            ending = None if lost else self._ending  # lost frames are reported before the end
            if ending is not None:
                self._ending = None
            finished, discard = self._state != _OPEN, self._discard
        if lost:
            _report(lost)
            return []
        if ending is not None:
            if discard:
                self.abort()
            else:
                self.close()
            raise ending
        return None if finished else []

    def poll(self) -> list[str]:
        """Every frame waiting now, without waiting: for tests that speak frames themselves.

        The broker answers within ``send``, so what a frame causes is waiting once it returns.
        """
        with self._lock:
            if self._discard:
                return []
            texts = list(self._inbox)
            self._inbox.clear()
            return texts

    def keepalive(self, now: float) -> None:
        """Nothing to keep alive in memory."""

    def drop(self, reason: str) -> None:
        """Declare the socket broken: ``recv`` raises ConnectionClosedError(reason)."""
        with self._lock:
            if self._state == _CLOSED:
                return
            self._ending = ConnectionClosedError(reason)
            self._discard = True
        self.abort()

    def close(self) -> None:
        """Close gracefully: the inbox is still read, then ``recv`` returns None."""
        with self._lock:
            if self._state != _OPEN:
                return
            self._state = _CLOSING
            server, self._server = self._server, None
            self._ready.notify_all()
        if server is not None:
            server.on_gone()

    def abort(self) -> None:
        """End the socket at once: ``recv`` returns None (or raises a drop's error)."""
        with self._lock:
            if self._state == _CLOSED:
                return
            self._state = _CLOSED
            self._inbox.clear()
            server, self._server = self._server, None
            tell = not self._closed_told
            self._closed_told = True
            self._ready.notify_all()
        if server is not None:
            server.on_gone()
        callback = self.on_closed
        if tell and callback is not None:
            callback(self)

    def wait_written(self, deadline: float) -> bool:
        """Everything sent already reached the broker."""
        return True

    def release(self) -> None:
        """End the socket and report what was lost with it."""
        self.abort()
        with self._lock:
            lost, self._lost = self._lost, []
        _report(lost)

    # -- the broker's side (called under the broker's lock) ---------------------------------------

    def push(self, texts: list[str]) -> None:
        """Queue frames from the server for the client to read."""
        with self._lock:
            if self._state == _CLOSED or self._discard or self._ending is not None:
                return
            self._inbox.extend(texts)
            self._ready.notify_all()

    def server_close(self, code: int | None, reason: str = "") -> None:
        """The server closes the socket: ``code`` None is a close frame without a status."""
        with self._lock:
            if self._state == _CLOSED or self._ending is not None:
                return
            self._server = None
            self._ending = close_error(code, reason, self._url)
            self._ready.notify_all()

    def cut(self, reason: str) -> None:
        """The network drops the socket: in-flight frames are lost both ways."""
        with self._lock:
            if self._state == _CLOSED or self._ending is not None:
                return
            self._server = None
            self._inbox.clear()
            self._discard = True
            self._ending = ConnectionClosedError(f"connection to {self._url} dropped: {reason}")
            self._ready.notify_all()

    def __repr__(self) -> str:
        state = ("open", "closing", "closed")[self._state]
        return f"MemoryTransport({self._url!r}, {state})"


def _report(lost: list[tuple[LostCallback, str | bytes, str]]) -> None:
    for callback, text, reason in lost:
        try:
            callback(text, reason)
        except Exception:  # as the websocket transport: a failing report must not stop reading
            log.exception("reporting a lost frame failed")
