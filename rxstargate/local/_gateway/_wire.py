"""Writing to a websockets connection without a task per frame; Pulsar-on-Jetty's error close."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State


def is_writable(connection: ServerConnection) -> bool:
    """Whether frames may still be written: the socket is open and its transport not closing.

    After a reset the transport closes at once but the connection learns of it one loop
    iteration later; writing in between only makes asyncio log "socket.send() raised exception".
    """
    return connection.protocol.state is State.OPEN and not connection.transport.is_closing()


def write_texts(connection: ServerConnection, texts: list[str]) -> None:
    """Queue text frames on the transport in one write (no drain: callers bound what they write).

    Does nothing once the connection is closing or closed.
    """
    if not is_writable(connection):
        return
    protocol = connection.protocol
    for text in texts:
        protocol.send_text(text.encode())
    connection.transport.write(b"".join(protocol.data_to_send()))


def send_close_without_status(connection: ServerConnection) -> None:
    """Queue an EMPTY close frame, as Pulsar's numbered errors reach clients (1005).

    Does not wait for the peer's answer: ``await connection.close()`` does, within its close
    timeout.
    """
    if not is_writable(connection):
        return
    with contextlib.suppress(Exception):  # a transport that fails now is closed anyway
        connection.protocol.send_close()
        connection.send_data()


async def finish_close(connection: ServerConnection) -> None:
    """Wait for the closing handshake (at most the close timeout), then drop the connection."""
    with contextlib.suppress(ConnectionClosed):
        await connection.close()


class Outbox:
    """Frames queued from any thread, written on the event loop with one wake-up per batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connection: ServerConnection) -> None:
        self._loop = loop
        self._connection = connection
        self._lock = threading.Lock()
        self._texts: list[str] = []
        self._scheduled = False
        self._closed = False

    def put(self, text: str) -> None:
        """Queue one frame; safe from any thread. Dropped once the connection is closing."""
        with self._lock:
            if self._closed:
                return
            self._texts.append(text)
            if self._scheduled:
                return
            self._scheduled = True
        self._loop.call_soon_threadsafe(self._flush)

    def call(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the event loop after the frames queued so far are written."""
        self._loop.call_soon_threadsafe(self._flush_then, callback)

    def flush(self) -> None:
        """Write what is queued now; only on the event loop's thread."""
        self._flush()

    def _flush_then(self, callback: Callable[[], object]) -> None:
        self._flush()
        callback()

    def _flush(self) -> None:
        with self._lock:
            texts, self._texts = self._texts, []
            self._scheduled = False
            if not texts or self._closed:
                return
            if not is_writable(self._connection):
                self._closed = True  # nothing will be written to this connection again
                return
        write_texts(self._connection, texts)
