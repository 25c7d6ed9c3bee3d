"""A WebSocket served by a client's I/O loop: the :class:`~rxstargate._seam.Transport` without
threads of its own.

websocket-client does the handshake (TLS, proxies, headers); the socket is then non-blocking and
the loop (``_ioloop``) alone reads it. Any thread may :meth:`LoopConnection.send`: it appends to
the outbox and, when the outbox was idle, tells the loop, which writes many frames per system
call. An urgent frame sent when nothing is queued or unwritten and the server answered since the
last one (request and response: a blocking ``producer.send()``) the caller writes itself on a
plain TCP socket, saving the hop to the loop thread; the loop writes what the socket did not take.

Frames read are handed over by :meth:`~LoopConnection.recv_batch` (blocking on the connection's
inbox) or, once :meth:`~LoopConnection.deliver_to` was called, by calling its callbacks on the
loop thread, so that nobody needs a thread just to wait for a socket.

The methods under "the loop thread tells" are called by the loop's side of the socket
(:class:`~rxstargate._loop_socket.LoopSocket`) only.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rxstargate._config import TransportConfig
from rxstargate._loop_socket import LoopSocket
from rxstargate._pinging import CLOSED, CLOSING, OPEN, PingsWhenIdle
from rxstargate._seam import LostCallback, Transport
from rxstargate._transport import _close_error, _report_lost
from rxstargate._wsframes import OP_CLOSE, OP_PONG, OP_TEXT, FrameError
from rxstargate.exceptions import ConnectionClosedError, StargateConnectionError

if TYPE_CHECKING:
    from rxstargate._ioloop import IOLoop

__all__ = ["EndCallback", "FramesCallback", "LoopConnection", "Queued"]

log = logging.getLogger("rxstargate.transport")

#: Called on the loop thread with the text frames of one read.
FramesCallback = Callable[[list[str]], None]
#: Called once on the loop thread when the connection ended: the error, or None when closed.
EndCallback = Callable[[ConnectionClosedError | None], None]

_OPEN, _CLOSING, _CLOSED = OPEN, CLOSING, CLOSED
_TICK = 0.25  # how often a blocked recv looks at the connection's state (seconds)
_MAX_BATCH = 512  # lazy frames leave at once when this many are queued
# Frames encoded for one write, in bytes (at least one frame): a masked copy of a producer's
# whole window of 100 KiB payloads would be another 130 MiB.
_WRITE_CHUNK = 1 << 20
_NOT_ENDED: Any = object()
_TAKEN: Any = object()  # the outcome was handed over: the connection reads as closed

Queued = tuple[int, bytes | str, LostCallback | None]


class LoopConnection(PingsWhenIdle):
    """One open WebSocket whose reads and writes the client's :class:`IOLoop` does.

    Created by :meth:`IOLoop.__call__` after the handshake; ``io`` is the loop's side of it.
    Same contract as :class:`~rxstargate._transport.Connection`.
    """

    def __init__(self, sock: Any, url: str, config: TransportConfig, loop: IOLoop) -> None:
        self.url = url
        self._config = config
        self._loop = loop
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: collections.deque[Queued] = collections.deque()
        self._scheduled = False  # the loop was told about the frames queued
        self._answered = True  # bytes arrived since the last frame written through
        self._urgent = False  # ... and told to write them at once
        self._state = _OPEN
        self._broken: str | None = None
        self._close_status = (1000).to_bytes(2, "big")
        self._closing_sent = False
        self._inbox: list[str] = []
        self._end: ConnectionClosedError | None = _NOT_ENDED
        self._on_frames: FramesCallback | None = None
        self._on_end: EndCallback | None = None
        self._last_seen = time.monotonic()
        self._ping_sent: float | None = None
        self.written = threading.Event()  # the close frame left, or writing ended
        self.on_closed: Callable[[Transport], None] | None = None
        self.io = LoopSocket(sock, self, config.max_receive_bytes, config.write_timeout)

    # -- any thread: writing ---------------------------------------------------------------

    def send(
        self, text: str | bytes, *, urgent: bool = True, on_lost: LostCallback | None = None
    ) -> None:
        """Queue one text frame; returns at once. Thread-safe.

        Raises:
            StargateConnectionError: when the connection is closing or gone.
        """
        lock = self._lock
        lock.acquire()  # not ``with``: half its cost, for every ack a consumer queues
        try:
            if self._state != _OPEN:
                raise StargateConnectionError(f"the connection to {self.url} is closed")
            queue = self._queue
            if not urgent:  # a settle or a permit, the common case: nothing written through
                queue.append((OP_TEXT, text, on_lost))
                if self._urgent or (self._scheduled and len(queue) < _MAX_BATCH):
                    return  # the loop was told, at once or within the linger time
                self._scheduled = True
                # A full batch leaves at once: said to the loop once, not for every frame
                # queued until it takes them (thousands of calls for a busy consumer's acks).
                urgent = self._urgent = len(queue) >= _MAX_BATCH
                through = False
            else:
                through = self._answered and not queue and self.io.claim_write()
                if through:
                    self._answered = False
                else:
                    queue.append((OP_TEXT, text, on_lost))
                    if self._urgent:
                        return
                    self._urgent = self._scheduled = True
        finally:
            lock.release()
        if through:
            self._write_through((OP_TEXT, text, on_lost))
        else:
            self._loop.flush_soon(self.io, urgent)

    def _write_through(self, item: Queued) -> None:
        """Write ``item`` on this thread (the write lock is ours), then let the loop see to the
        rest: the part the socket did not take, frames queued meanwhile, a close."""
        try:
            self.io.write_through(item)
        finally:
            self.io.write_lock.release()
        with self._lock:  # after the release: the loop's flush could not take the lock before
            left = bool(self._queue) or self.io.writing or self._state != _OPEN
            if left:
                self._scheduled = self._urgent = True
        if left:
            self._loop.flush_soon(self.io, True)

    def _control(self, opcode: int, data: bytes) -> None:
        with self._lock:
            if self._state != _OPEN:
                return
            self._queue.append((opcode, data, None))
            self._scheduled = self._urgent = True
        self._loop.flush_soon(self.io, True)

    # -- any thread: reading ---------------------------------------------------------------

    def recv(self) -> str | None:
        """The next text frame, or None after :meth:`close` or :meth:`abort`.

        Raises:
            ConnectionClosedError: as :meth:`~rxstargate._transport.Connection.recv`.
        """
        with self._lock:
            while not self._inbox and self._end is _NOT_ENDED:
                self._changed.wait(_TICK)
            if self._inbox:
                return self._inbox.pop(0)
            self._raise_end()
            return None

    def recv_batch(self) -> list[str] | None:
        """Every text frame already read, waiting only when there is none; None once closed."""
        with self._lock:
            while not self._inbox and self._end is _NOT_ENDED:
                self._changed.wait(_TICK)
            if self._inbox:
                texts, self._inbox = self._inbox, []
                return texts
            self._raise_end()
            return None

    def _raise_end(self) -> None:
        end = self._end
        self._end = _TAKEN  # raised once; then the connection reads as closed
        if end is not None and end is not _TAKEN:
            raise end

    def deliver_to(self, on_frames: FramesCallback, on_end: EndCallback) -> None:
        """Have the loop hand every frame to ``on_frames`` instead of :meth:`recv_batch`.

        Both run on the loop thread and must not block. Frames already read go first;
        ``on_end`` is called once, with the error or None (closed on purpose), after the
        last frame.
        """
        self._loop.call_soon(lambda: self._attach(on_frames, on_end))

    def _attach(self, on_frames: FramesCallback, on_end: EndCallback) -> None:
        with self._lock:
            texts, self._inbox = self._inbox, []
            self._on_frames, self._on_end = on_frames, on_end
            ended = self._end is not _NOT_ENDED
        if texts:
            _call(on_frames, texts, self.url)
        if ended:
            self._end_pushed()

    def _finish(self, outcome: ConnectionClosedError | None) -> None:
        """The connection ended (the first outcome wins): tell the owner after its frames."""
        with self._lock:
            if self._end is not _NOT_ENDED:
                return
            self._end = outcome
            self._changed.notify_all()
            pushed = self._on_end is not None
        if pushed:
            self._loop.call_soon(self._end_pushed)

    def _end_pushed(self) -> None:
        with self._lock:
            outcome, self._end = self._end, _TAKEN
            callback, self._on_end = self._on_end, None
        if callback is not None:
            _call(callback, None if outcome is _TAKEN else outcome, self.url)

    def _broken_error(self) -> ConnectionClosedError | None:
        return None if self._broken is None else ConnectionClosedError(self._broken)

    # -- the loop thread tells ---------------------------------------------------------------

    def seen(self) -> None:
        """Bytes arrived: the peer is alive."""
        self._last_seen = time.monotonic()
        self._ping_sent = None
        self._answered = True

    def pinged(self, data: bytes) -> None:
        """The server pinged: answer."""
        self._control(OP_PONG, data)

    def frames_read(self, texts: list[str]) -> None:
        """Hand over (and clear) the text frames of one read."""
        if not texts:
            return
        batch = texts[:]
        texts.clear()
        with self._lock:
            if self._end is not _NOT_ENDED:
                return  # ended meanwhile (aborted): nobody reads these any more
            callback = self._on_frames
            if callback is None:
                self._inbox.extend(batch)
                self._changed.notify_all()
                return
        _call(callback, batch, self.url)

    def server_closed(self, data: bytes) -> None:
        """The server's close frame: the error for the owner, and our close frame back."""
        if self._state != _OPEN:
            self._finish(self._broken_error())
            return
        self._close_status = data[:2]  # echoed in our closing frame
        self._finish(_close_error(data, self.url))
        self.close()

    def read_failed(self, exc: BaseException) -> None:
        """Reading hit the end of the stream, a socket error or a framing error: cut it."""
        if isinstance(exc, FrameError):
            failure = ConnectionClosedError(f"{self.url}: {exc}", 1009)
            failure.retriable = False
            outcome: ConnectionClosedError | None = failure
        elif self._broken is not None or self._state != _OPEN:
            outcome = self._broken_error()
        else:
            outcome = ConnectionClosedError(f"connection to {self.url} dropped: {exc}")
        self._finish(outcome)
        self.abort()

    def take_batch(self) -> tuple[list[Queued], bool]:
        """The frames to write now, and whether the last of them is our close frame."""
        with self._lock:
            self._scheduled = self._urgent = False
            if self._state == _CLOSED:
                return [], False
            queue = self._queue
            if sum(len(item[1]) for item in queue) <= _WRITE_CHUNK:
                batch = list(queue)
                queue.clear()
            else:  # large payloads: encode and mask a bounded share, not the whole window
                batch, size = [], 0
                while queue and size < _WRITE_CHUNK:
                    item = queue.popleft()
                    batch.append(item)
                    size += len(item[1])
            closes = not queue and self._state == _CLOSING and not self._closing_sent
            self._closing_sent = self._closing_sent or closes
        if closes:
            batch.append((OP_CLOSE, self._close_status, None))
        return batch, closes

    def write_failed(self, reason: str) -> None:
        """A write failed or made no progress for too long."""
        self.written.set()
        if self._state != _CLOSED:
            self.drop(reason)

    # -- any thread: health and ending -----------------------------------------------------

    def drop(self, reason: str) -> None:
        """Declare the connection broken from any thread: ``recv`` raises ConnectionClosedError."""
        if self._state == _CLOSED:
            return
        self._broken = reason
        self.abort()

    def close(self) -> None:
        """Begin a graceful close from any thread: queued frames go first, then a close frame."""
        with self._lock:
            if self._state != _OPEN:
                return
            self._state = _CLOSING
            self._scheduled = self._urgent = True
        self._loop.flush_soon(self.io, True)

    def abort(self) -> None:
        """End the connection at once from any thread: shut the socket down first.

        Frames still queued are reported lost; a blocked ``recv`` returns or raises.
        """
        with self._lock:
            if self._state == _CLOSED:
                return
            self._state = _CLOSED
            leftover = list(self._queue)
            self._queue.clear()
        with contextlib.suppress(OSError):
            self.io.sock.shutdown(socket.SHUT_RDWR)
        self._finish(self._broken_error())
        self.written.set()
        self._loop.flush_soon(self.io, True)  # the loop notices and forgets the socket
        _report_lost(leftover, self._broken or f"the connection to {self.url} was closed")
        callback = self.on_closed
        if callback is not None:
            callback(self)

    def wait_written(self, deadline: float) -> bool:
        """After :meth:`close`: wait until everything queued was written (or ``deadline``)."""
        return self.written.wait(max(0.0, deadline - time.monotonic()))

    def release(self) -> None:
        """Free the socket: the loop forgets it and closes it."""
        self.abort()
        self._loop.release(self.io)

    @property
    def closed(self) -> bool:
        """True once :meth:`close`, :meth:`abort` or :meth:`drop` was called."""
        return self._state != _OPEN


def _call(callback: Callable[[Any], None], argument: Any, url: str) -> None:
    try:
        callback(argument)
    except Exception:
        log.exception("a frame callback of %s failed", url)
