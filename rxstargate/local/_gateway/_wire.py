"""Writing to a websockets connection without a task per frame; Pulsar-on-Jetty's error close."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State


def write_texts(connection: ServerConnection, texts: list[str]) -> None:
    """Queue text frames on the transport at once (no drain: callers bound what they write)."""
    if connection.protocol.state is not State.OPEN:
        return
    protocol = connection.protocol
    for text in texts:
        protocol.send_text(text.encode())
    connection.send_data()


async def close_without_status(connection: ServerConnection) -> None:
    """Close with an EMPTY close frame, as Pulsar's numbered errors reach clients (1005)."""
    try:
        async with connection.send_context():
            connection.protocol.send_close()
    except ConnectionClosed:
        pass


class Outbox:
    """Frames queued from any thread, written on the event loop with one wake-up per batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connection: ServerConnection) -> None:
        self._loop = loop
        self._connection = connection
        self._lock = threading.Lock()
        self._texts: list[str] = []
        self._scheduled = False

    def put(self, text: str) -> None:
        """Queue one frame; safe from any thread."""
        with self._lock:
            self._texts.append(text)
            if self._scheduled:
                return
            self._scheduled = True
        self._loop.call_soon_threadsafe(self._flush)

    def call(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the event loop after the frames queued so far are written."""
        self._loop.call_soon_threadsafe(self._flush_then, callback)

    def _flush_then(self, callback: Callable[[], object]) -> None:
        self._flush()
        callback()

    def _flush(self) -> None:
        with self._lock:
            texts, self._texts = self._texts, []
            self._scheduled = False
        if texts:
            write_texts(self._connection, texts)
