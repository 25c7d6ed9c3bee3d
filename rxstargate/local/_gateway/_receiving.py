"""What consumer and reader sockets share: a receive thread bounded by credits, and message frames.

The thread takes a credit before each receive, so a socket never has more messages in flight than
its window (push mode, readers) or its permits (pull mode). Frames are queued to an Outbox and
written on the event loop in batches.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
from abc import ABC, abstractmethod
from typing import Any

from websockets.asyncio.server import ServerConnection

from rxstargate._server_time import format_time
from rxstargate.local._gateway._connection import accept_texts
from rxstargate.local._gateway._offloop import off_loop
from rxstargate.local._gateway._wire import Outbox, finish_close, send_close_without_status

_POLL_MILLIS = 200


def message_frame(
    message: Any,
    message_id: str,
    redelivery_count: int | None = None,
    *,
    with_topic: bool = False,
) -> str:
    """A ConsumerMessage frame as Pulsar writes it (eventTime and key only when set).

    ``with_topic`` adds ``"topic"``, the message's full topic name: local Pulsar's extension
    for v3 multi-topic sockets (Pulsar writes no topic; clients ignore fields they do not know).
    """
    # Built by hand (ids, base64 and times need no escaping): json.dumps of the whole frame was
    # the largest cost of delivering a message.
    properties = message.properties()
    count = message.redelivery_count() if redelivery_count is None else redelivery_count
    parts = [
        '{"messageId":"',
        message_id,
        '","payload":"',
        base64.b64encode(message.data()).decode("ascii"),
        '","properties":',
        _dumps(properties) if properties else "{}",
        ',"publishTime":"',
        format_time(message.publish_timestamp()),
        '","redeliveryCount":',
        str(count),
    ]
    event_time = message.event_timestamp()
    if event_time:
        parts += [',"eventTime":"', format_time(event_time), '"']
    key = message.partition_key()
    if key:
        parts += [',"key":', _dumps(key)]
    if with_topic:
        parts += [',"topic":', _dumps(message.topic_name())]
    parts.append("}")
    return "".join(parts)


_dumps = json.JSONEncoder(separators=(",", ":")).encode


class Credit:
    """How many more messages a socket may be given: a counter and a condition.

    Adding any amount costs the same (a permit of 2**31 - 1 is one addition), and the count may
    go below zero, as Pulsar's pending count does when a permit is negative.
    """

    def __init__(self, initial: int) -> None:
        self._count = initial
        self._condition = threading.Condition(threading.Lock())

    def add(self, count: int) -> None:
        """Add ``count`` (may be negative); wakes the receive thread when credit is available."""
        with self._condition:
            self._count += count
            if self._count > 0:
                self._condition.notify()

    def take(self, timeout: float) -> bool:
        """Take one credit, waiting up to ``timeout`` seconds; False if none came."""
        with self._condition:
            if self._count <= 0 and not self._condition.wait_for(lambda: self._count > 0, timeout):
                return False
            self._count -= 1
            return True

    @property
    def count(self) -> int:
        """The credit left (for tests and logs)."""
        return self._count


class ReceivingSession(ABC):
    """Base of consumer and reader sockets; subclasses decide what to deliver and how to settle."""

    thread_name = "rxstargate-gateway-receive"

    def __init__(self, initial_credit: int) -> None:
        self._credit = Credit(initial_credit)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._outbox: Outbox | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: ServerConnection | None = None
        self._failed = False
        self._closed = False

    # --- to override -------------------------------------------------------------------------
    @abstractmethod
    def _receive(self, timeout_millis: int) -> Any:
        """One message from the broker-side consumer or reader (raises its Timeout)."""

    @abstractmethod
    def _admit(self, message: Any) -> str | None:
        """Called under the lock: the frame to deliver, or None to drop (give credit back)."""

    @abstractmethod
    async def _on_text(self, text: str) -> None:
        """Handle one command frame from the client."""

    def _on_text_now(self, text: str) -> bool:
        """Handle a command frame as soon as it is parsed, if that needs no waiting.

        Returns False to leave it to :meth:`_on_text` (which must then do all of it: a frame
        declined after some of its effects must be one whose effects may happen twice).
        """
        return False

    @abstractmethod
    def _close_broker_side(self) -> None:
        """Close the broker-side consumer or reader."""

    def _tick(self) -> list[str]:
        """Called under the lock about every poll interval: frames to deliver again."""
        return []

    def _idle(self) -> None:  # noqa: B027 - an optional hook
        """Called on the receive thread when a receive with credit to spare found nothing."""

    def _busy(self) -> None:  # noqa: B027 - an optional hook
        """Called on the receive thread when a message arrived."""

    def _is_timeout(self, exc: Exception) -> bool:
        return type(exc).__name__ == "Timeout"

    # --- machinery ---------------------------------------------------------------------------
    async def run(self, connection: ServerConnection) -> None:
        """Deliver messages and serve commands until the socket closes or the broker side fails."""
        self._loop = asyncio.get_running_loop()
        self._connection = connection
        self._outbox = Outbox(self._loop, connection)
        self._thread = threading.Thread(target=self._pump, name=self.thread_name, daemon=True)
        self._thread.start()
        accept_texts(connection, self._on_text_now)
        try:
            async for text in connection:
                if isinstance(text, str):
                    await self._on_text(text)
                if self._failed:
                    break
        finally:
            accept_texts(connection, None)

    def stop_receiving(self) -> None:
        """Let the receive thread end (the socket stays open)."""
        self._stopping.set()

    def give_credit(self, count: int = 1) -> None:
        """Allow ``count`` more deliveries (a negative count takes credit back)."""
        self._credit.add(count)

    def put(self, text: str) -> None:
        """Queue a frame for the socket."""
        if self._outbox is not None:
            self._outbox.put(text)

    async def fail(self) -> None:
        """Close the socket as Pulsar does after an error: an empty close frame.

        The broker side is released at once, before the peer answers the close.
        """
        self._failed = True
        if self._connection is not None:
            send_close_without_status(self._connection)
        await self.close()
        if self._connection is not None:
            await finish_close(self._connection)

    def _pump(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                again = self._tick()
            for text in again:
                self.put(text)
            if not self._credit.take(_POLL_MILLIS / 1000):
                continue
            try:
                message = self._receive(_POLL_MILLIS)
            except Exception as exc:
                self._credit.add(1)
                if self._is_timeout(exc):
                    self._idle()
                    continue
                if not self._stopping.is_set() and self._loop is not None:
                    self._loop.call_soon_threadsafe(self._spawn_fail)
                return
            self._busy()
            with self._lock:
                frame = self._admit(message)
            if frame is None:
                self._credit.add(1)
            else:
                self.put(frame)

    def _spawn_fail(self) -> None:
        if self._outbox is not None:
            self._fail_task = asyncio.ensure_future(self.fail())

    async def close(self) -> None:
        """Stop the receive thread and close the broker-side consumer or reader."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        with contextlib.suppress(Exception):  # already closed, or the broker is gone
            await off_loop(self._close_broker_side, "close-consumer")
        if self._thread is not None:
            thread = self._thread
            await off_loop(lambda: thread.join(5.0), "join-receiver")
