"""The loop's side of one socket: non-blocking reads parsed into frames, batched writes.

Only the client's I/O loop thread (``_ioloop``) reads a :class:`LoopSocket`; what the socket's
owner sees of it is its :class:`~rxstargate._loop_connection.LoopConnection`. Writes happen
under the socket's ``write_lock``: the loop's batches, and the frames a caller writes through
itself (:meth:`LoopSocket.write_through`, a plain TCP socket only: a TLS connection object must
not be used by two threads at once).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any

from rxstargate._transport import _encode, _report_lost, _write_failure, _WriteTimeout
from rxstargate._wsframes import OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, FrameError, FrameReader

if TYPE_CHECKING:
    from rxstargate._loop_connection import LoopConnection, Queued

__all__ = ["LoopSocket"]

READ_SIZE = 262144  # the loop's read buffer, in bytes
_READS_PER_TURN = 8  # reads of one socket before the loop serves the others
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class _NeedMore(Exception):
    """The frame reader wants bytes that have not arrived yet."""


class LoopSocket:
    """A non-blocking socket past its handshake, served by the loop thread.

    Args:
        sock: the socket (plain or TLS), non-blocking.
        connection: its owner's side, told about frames, closes and failures.
        max_receive_bytes: the largest message accepted from the server.
        write_timeout: seconds the socket may take no byte before the connection drops.
    """

    def __init__(
        self, sock: Any, connection: LoopConnection, max_receive_bytes: int, write_timeout: float
    ) -> None:
        self.sock: Any = sock
        self.connection = connection
        self.reading = True
        self.released = threading.Event()  # the loop forgot the socket and closed it
        self._write_timeout = write_timeout
        self._frames = FrameReader(_need_more, max_receive_bytes)
        self._output: memoryview | None = None  # bytes of a batch not written yet
        self._output_batch: list[Queued] = []
        self._output_closes = False
        self._progress_at = 0.0  # the last write that made progress
        # Held by whoever writes: the loop (flush, check_write, close) or a caller writing
        # through. The loop only tries it: a caller holds it for one non-blocking send.
        self.write_lock = threading.Lock()
        self.direct = not isinstance(sock, ssl.SSLSocket)  # callers may write through

    @property
    def writing(self) -> bool:
        """True while a batch waits for the socket to take it."""
        return self._output is not None

    # -- reading ---------------------------------------------------------------------------

    def readable(self, into: memoryview) -> bool:
        """Read what arrived and hand its frames over; True when more may be waiting.

        ``into`` is the loop's read buffer, shared by its sockets: a fresh buffer of
        ``READ_SIZE`` bytes for every read costs the allocator a map and unmap of its pages
        (and every core a TLB flush), which a client of many lightly loaded sockets pays on
        nearly every message.
        """
        connection = self.connection
        texts: list[str] = []
        size = len(into)
        try:
            for _ in range(_READS_PER_TURN):
                try:
                    count = self.sock.recv_into(into)
                except _WOULD_BLOCK:
                    return False
                if not count:
                    raise EOFError("the server closed the connection")
                connection.seen()
                still_open = self._parse(into[:count], texts)
                connection.frames_read(texts)
                if not still_open:
                    self.reading = False
                    return False
                if count < size and not _decrypted_pending(self.sock):
                    return False
            return True
        except (FrameError, OSError, EOFError, ValueError) as exc:
            connection.frames_read(texts)
            self.reading = False
            connection.read_failed(exc)
            return False

    def _parse(self, chunk: memoryview, texts: list[str]) -> bool:
        """Frames of ``chunk`` (and what was left of earlier ones) into ``texts``; False after
        the server's close frame."""
        frames = self._frames
        frames.feed(chunk)
        while True:
            frames.take_texts(texts)  # whole data frames, the common case, all at once
            if not frames.buffered:
                return True  # a read that ended on a frame's end: nothing left to look at
            try:
                frame = frames.next_frame()  # anything else, checked in full
            except _NeedMore:  # a frame cut short waits for the next read
                return True
            opcode = frame.opcode
            if opcode in (OP_TEXT, OP_BINARY):
                texts.append(frame.data.decode("utf-8", "replace"))
            elif opcode == OP_PING:
                self.connection.pinged(frame.data)
            elif opcode == OP_CLOSE:
                self.connection.frames_read(texts)
                self.connection.server_closed(frame.data)
                return False

    # -- writing ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what is queued, as far as the socket takes it without waiting.

        A caller writing through holds the write lock: it has the loop flush again after it.
        """
        if not self.write_lock.acquire(blocking=False):
            return
        try:
            while (self._output is not None or self._next_batch()) and self._write():
                pass
        finally:
            self.write_lock.release()

    def claim_write(self) -> bool:
        """For a caller about to write through (nothing queued): take the write lock, unless
        the socket is TLS, busy, or holds bytes not written yet."""
        if not self.direct or not self.write_lock.acquire(blocking=False):
            return False
        if self._output is not None:
            self.write_lock.release()
            return False
        return True

    def write_through(self, item: Queued) -> None:
        """On a caller's thread, holding ``write_lock``, nothing queued or unwritten: write
        ``item`` now.

        What the socket does not take (all of it on EAGAIN or an error) is left for the loop,
        which writes it before any later frame, or meets the error again and reports it.
        """
        data = _encode([item])
        try:
            sent = self.sock.send(data)
        except (OSError, ValueError):
            sent = 0
        if sent < len(data):
            self._output = memoryview(data)[sent:]
            self._output_batch = [item]
            self._output_closes = False
            self._progress_at = time.monotonic()

    def _next_batch(self) -> bool:
        batch, closes = self.connection.take_batch()
        if not batch:
            return False
        self._output = memoryview(_encode(batch))
        self._output_batch = batch
        self._output_closes = closes
        self._progress_at = time.monotonic()
        return True

    def _write(self) -> bool:
        """Write the current batch; True when it left whole."""
        output = self._output
        assert output is not None
        try:
            sent = self.sock.send(output)
        except _WOULD_BLOCK:
            return False
        except (OSError, ValueError) as exc:
            self._write_failed(exc)
            return False
        self._progress_at = time.monotonic()
        if sent < len(output):
            self._output = output[sent:]
            return False
        self._output = None
        self._output_batch = []
        if self._output_closes:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
            self.connection.written.set()
        return True

    def _write_failed(self, exc: BaseException) -> None:
        reason = _write_failure(exc, self.connection.url, self._write_timeout)
        batch, self._output_batch, self._output = self._output_batch, [], None
        _report_lost(batch, reason)
        self.connection.write_failed(reason)

    def check_write(self, now: float) -> None:
        """Drop the connection when its socket took no byte for ``write_timeout`` seconds."""
        if self._output is None or now - self._progress_at <= self._write_timeout:
            return
        if self.write_lock.acquire(blocking=False):  # else a caller is writing right now
            try:
                if self._output is not None:
                    self._write_failed(_WriteTimeout())
            finally:
                self.write_lock.release()

    def close(self) -> None:
        """Close the socket (the loop forgot it already); what it did not write is lost."""
        with self.write_lock:  # a caller writing through finishes its one send first
            batch, self._output_batch, self._output = self._output_batch, [], None
            with contextlib.suppress(OSError):
                self.sock.close()
        _report_lost(batch, f"the connection to {self.connection.url} was closed")
        self.released.set()


def _need_more(size: int) -> bytes:
    """The frame reader's ``read``: the loop feeds it what arrived, so it never has more."""
    raise _NeedMore()


def _decrypted_pending(sock: Any) -> bool:
    """Whether a TLS socket holds decrypted bytes that select() does not report."""
    pending = getattr(sock, "pending", None)
    return pending is not None and pending() > 0
