"""The gateway's WebSocket connection: text frames handled as they are parsed, when that is safe.

websockets queues every data frame for the task that awaits ``recv()``: a future set, a task
woken and one more loop iteration per frame, which at a steady modest rate (one frame per
wake-up) was a large part of the gateway's cost per message. A session may instead hand the
connection a handler that runs on each complete text frame as soon as it is parsed. Order is
kept: the handler only sees a frame while the session's task waits in ``recv()`` with nothing
queued before it; otherwise, and whenever the handler declines a frame (it returns False:
the frame needs the task, for instance to wait), the frame takes websockets' usual path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

log = logging.getLogger("rxstargate.gateway")

TextHandler = Callable[[str], bool]


class GatewayConnection(ServerConnection):
    """A ``ServerConnection`` whose complete text frames may go to a handler at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.text_handler: TextHandler | None = None
        self._failing: asyncio.Future[None] | None = None

    def process_event(self, event: Event) -> None:
        """Hand a complete text frame to the handler when order allows; else as websockets does."""
        handler = self.text_handler
        if (
            handler is not None
            and isinstance(event, Frame)
            and event.opcode is Opcode.TEXT
            and event.fin
            and self._reader_waits()
        ):
            try:
                text = bytes(event.data).decode()
            except UnicodeDecodeError:
                pass  # recv() raises it, as before
            else:
                if self._handled(handler, text):
                    return
        super().process_event(event)

    def _reader_waits(self) -> bool:
        """Whether the session's task waits in ``recv()`` for a new message, nothing queued."""
        messages = getattr(self, "recv_messages", None)
        frames = getattr(messages, "frames", None)
        queued = getattr(frames, "queue", None)
        waiting = getattr(messages, "get_in_progress", False) is True
        return waiting and queued is not None and not queued

    def _handled(self, handler: TextHandler, text: str) -> bool:
        try:
            return handler(text)
        except Exception:  # a handler bug: end the socket as a failing session ends it
            log.exception("a frame handler failed")
            self.text_handler = None
            self._failing = asyncio.ensure_future(self.close(1011))
            return True


def accept_texts(connection: ServerConnection, handler: TextHandler | None) -> None:
    """Let ``handler`` take text frames as they are parsed (None: every frame goes to recv())."""
    if isinstance(connection, GatewayConnection):
        connection.text_handler = handler
