"""The WebSocket handshakes in progress, so that a stop can cut one short.

A server that accepts the TCP connection and never answers the upgrade holds the opening thread
in websocket-client's handshake for up to ``connect_timeout``. A stream that stops, or a client
that closes, does not want that socket any more: shutting it down ends the handshake at once
(it fails with a connection error that nobody waits for).

A handshake is found by the client that opened it, or by what it was opened for
(``on_behalf_of``: a stream's feed, or a producer, whose socket a sending thread opens).

The TCP connect itself cannot be cut short this way (websocket-client owns the socket until the
connect returns); it is marked, and given up as soon as it returns.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

_lock = threading.Lock()
_in_progress: dict[int, _Attempt] = {}  # by the opening thread's ident
_on_behalf: ContextVar[object] = ContextVar("rxstargate_handshake_for", default=None)


@dataclass
class _Attempt:
    ws: Any  # websocket.WebSocket
    owner: object  # what opened it: the client's TransportConfig
    opened_for: object = None  # what this thread opens sockets for, if it said
    tls: bool = False
    cut: bool = False


@contextlib.contextmanager
def on_behalf_of(opener: object) -> Iterator[None]:
    """Handshakes made on this thread within the block are cut by ``cut_short(owner=opener)``."""
    token = _on_behalf.set(opener)
    try:
        yield
    finally:
        _on_behalf.reset(token)


@contextlib.contextmanager
def attempt(ws: Any, owner: object, *, tls: bool = False) -> Iterator[_Attempt]:
    """Register the handshake that ``ws`` (over TLS, if ``tls``) is about to make on this thread."""
    ident = threading.get_ident()
    current = _Attempt(ws, owner, _on_behalf.get(), tls)
    with _lock:
        _in_progress[ident] = current
    try:
        yield current
    finally:
        with _lock:
            if _in_progress.get(ident) is current:
                del _in_progress[ident]


def cut_short(owner: object, *, patience: float = 0.5) -> None:
    """End every handshake in progress that ``owner`` opened (a client's config) or is for.

    A handshake whose TCP connect has not returned yet is waited for up to ``patience``
    seconds (websocket-client hands over its socket microseconds after the connect), then
    left marked: it is given up as soon as its connect returns. A TLS handshake hands it over
    only once TLS is through, so it is marked without waiting.
    """
    with _lock:
        found = [a for a in _in_progress.values() if a.owner is owner or a.opened_for is owner]
        for a in found:
            a.cut = True
    give_up = time.monotonic() + patience
    for a in found:
        while a.ws.sock is None and not a.tls and _running(a) and time.monotonic() < give_up:
            time.sleep(0.005)
        sock = a.ws.sock
        if sock is not None:
            # The plain socket's shutdown even for TLS: it ends a read in progress on another
            # thread without touching the SSL object that read is using.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _running(a: _Attempt) -> bool:
    with _lock:
        return any(other is a for other in _in_progress.values())
