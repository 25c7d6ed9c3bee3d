"""The WebSocket transport: connect, TLS, headers, one writer per socket, keepalive, close codes.

This is the only module that imports ``websocket`` (websocket-client), and only for the
handshake; frames are read and written by :mod:`rxstargate._wsframes`. Everything it raises
is an rxstargate exception.

Threads of one :class:`Connection`:

- its owner's receive thread calls :meth:`Connection.recv`, which only reads (it answers
  pings by queueing pongs), so pongs and closes are seen on time whatever user code does;
- one writer thread ("rxstargate-writer-<name>") drains the connection's outbox. Any thread
  may :meth:`~Connection.send`: it only appends to the outbox, never touches the socket and
  never blocks. Frames leave in order, many per system call. A write that makes no progress
  for ``write_timeout`` seconds drops the connection;
- the client's keepalive thread (``_keepalive``) queues pings and drops a connection whose pong is
  late. It never writes either.

A frame queued with an ``on_lost`` callback that never reaches the socket (the connection
dropped or was aborted first) is reported through that callback, exactly once.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import websocket

from rxstargate import _handshakes
from rxstargate._config import TlsOptions, TransportConfig, redact_url
from rxstargate._pinging import CLOSED, CLOSING, OPEN, PingsWhenIdle
from rxstargate._seam import LostCallback, Transport, close_error
from rxstargate._wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    FrameReader,
)
from rxstargate._wsmask import encode_frames
from rxstargate.exceptions import (
    ConnectionClosedError,
    StargateConnectionError,
    handshake_error_for_status,
)

__all__ = ["Connection", "LostCallback"]

log = logging.getLogger("rxstargate.transport")

#: How often blocked socket calls wake up to look at the connection's state (seconds).
_TICK = 0.25
#: Lazy frames (acks, permits) wait at most this long, or until this many are queued.
_LINGER = 0.002
_MAX_BATCH = 512

_OPEN, _CLOSING, _CLOSED = OPEN, CLOSING, CLOSED


class _WriteTimeout(Exception):
    pass


class Connection(PingsWhenIdle):
    """One open WebSocket, past its handshake, with its writer thread: the default
    :class:`~rxstargate._seam.Transport`.

    Use :meth:`open` to create one. The owner's receive thread calls :meth:`recv`; any
    thread calls :meth:`send`. The connection ends with a :class:`ConnectionClosedError`
    from ``recv`` (the server closed it, it dropped, a pong or a write was late) or with
    ``recv`` returning None after :meth:`close` or :meth:`abort`.
    """

    def __init__(self, sock: Any, url: str, config: TransportConfig, name: str) -> None:
        self._sock: Any = sock
        self.url = url
        self._config = config
        self._frames = FrameReader(self._read_chunk, config.max_receive_bytes)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: collections.deque[tuple[int, bytes | str, LostCallback | None]] = (
            collections.deque()
        )
        self._urgent = False
        self._lazy_since = 0.0
        self._state = _OPEN
        self._broken: str | None = None
        self._last_seen = time.monotonic()
        self._ping_sent: float | None = None
        self._close_status = (1000).to_bytes(2, "big")
        self._deferred_error: ConnectionClosedError | None = None
        self.on_closed: Callable[[Transport], None] | None = None
        self._writer = threading.Thread(
            target=self._write_loop, name=f"rxstargate-writer-{name}", daemon=True
        )
        self._writer.start()

    @classmethod
    def open(cls, url: str, config: TransportConfig, name: str = "socket") -> Connection:
        """Connect and complete the handshake within ``config.connect_timeout``.

        Raises:
            HandshakeError: a typed subclass, when the server refuses the upgrade.
            StargateConnectionError: when the host cannot be reached or the handshake fails.
        """
        sock = _handshake(url, config)
        return cls(sock, redact_url(url), config, name)

    # -- writing ---------------------------------------------------------------------------

    def send(
        self, text: str | bytes, *, urgent: bool = True, on_lost: LostCallback | None = None
    ) -> None:
        """Queue one text frame; returns at once. Thread-safe.

        Args:
            text: the frame (bytes must be UTF-8).
            urgent: write as soon as possible; lazy frames (acks, permits) may wait a couple
                of milliseconds to leave together with others.
            on_lost: called once with ``text`` and the reason if the frame never reaches the
                socket.

        Raises:
            StargateConnectionError: when the connection is closing or gone.
        """
        with self._lock:
            if self._state != _OPEN:
                raise StargateConnectionError(f"the connection to {self.url} is closed")
            queue = self._queue
            queue.append((OP_TEXT, text, on_lost))
            if urgent:
                if not self._urgent:
                    self._urgent = True
                    self._wake.notify()
            elif len(queue) == 1:
                self._lazy_since = time.monotonic()
                self._wake.notify()
            elif len(queue) >= _MAX_BATCH:
                self._wake.notify()

    def _control(self, opcode: int, data: bytes) -> None:
        with self._lock:
            if self._state != _OPEN:
                return
            self._queue.append((opcode, data, None))
            self._urgent = True
            self._wake.notify()

    def _take_batch(self) -> list[tuple[int, bytes | str, LostCallback | None]] | None:
        """The next frames to write; None when the writer should stop."""
        with self._lock:
            while True:
                if self._state == _CLOSED:
                    return None
                queue = self._queue
                if queue:
                    if self._urgent or len(queue) >= _MAX_BATCH or self._state == _CLOSING:
                        break
                    left = self._lazy_since + _LINGER - time.monotonic()
                    if left <= 0:
                        break
                    self._wake.wait(left)
                elif self._state == _CLOSING:
                    return []
                else:
                    self._wake.wait()
            batch = list(queue)
            queue.clear()
            self._urgent = False
            return batch

    def _write_loop(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            closing = not batch
            if closing:
                batch = [(OP_CLOSE, self._close_status, None)]
            timeout = self._config.write_timeout
            try:
                _write_all(self._sock, timeout, lambda: self._state == _CLOSED, _encode(batch))
            except (OSError, ValueError, _WriteTimeout) as exc:
                reason = _write_failure(exc, self.url, timeout)
                _report_lost(batch, reason)
                if self._state != _CLOSED:
                    self.drop(reason)
                return
            if closing:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_WR)
                return

    # -- reading ---------------------------------------------------------------------------

    def _read_chunk(self, size: int) -> bytes:
        data: bytes = self._sock.recv(size)
        self._last_seen = time.monotonic()
        self._ping_sent = None
        return data

    def recv_batch(self) -> list[str] | None:
        """Every text frame already read, waiting only when there is none; None once closed.

        Handing frames over in batches wakes the consumer of the batch once per socket read
        rather than once per frame. Same errors as :meth:`recv`.
        """
        if self._deferred_error is not None:
            error, self._deferred_error = self._deferred_error, None
            raise error
        first = self.recv()
        if first is None:
            return None
        texts = [first]
        while self._frames.has_frame():
            try:
                text = self._next(block=False)
            except ConnectionClosedError as exc:
                self._deferred_error = exc  # raised on the next call, after these frames
                break
            if text is None:
                break
            texts.append(text)
        return texts

    def recv(self) -> str | None:
        """The next text frame, or None after :meth:`close` or :meth:`abort`.

        Only the owner's receive thread calls it.

        Raises:
            ConnectionClosedError: when the server closed the socket, it dropped, a pong or
                a write was late, or the server broke the protocol (``code`` is None for
                drops; not retriable for protocol violations and oversized frames).
        """
        return self._next(block=True)

    def _next(self, block: bool) -> str | None:
        while True:
            if not block and not self._frames.has_frame():
                return None
            try:
                frame = self._frames.next_frame()
            except TimeoutError:
                if self._state == _CLOSED:
                    self._ended(None)
                    return None
                continue
            except FrameError as exc:
                error = ConnectionClosedError(f"{self.url}: {exc}", 1009)
                error.retriable = False
                self.abort()
                raise error from exc
            except (OSError, EOFError, ValueError) as exc:
                self._ended(exc)
                return None
            opcode = frame.opcode
            if opcode in (OP_TEXT, OP_BINARY):
                return frame.data.decode("utf-8", "replace")
            if opcode == OP_PING:
                self._control(OP_PONG, frame.data)
            elif opcode == OP_CLOSE:
                if self._state != _OPEN:
                    self._ended(None)
                    return None
                error = _close_error(frame.data, self.url)
                self._close_status = frame.data[:2]  # echoed in our closing frame
                self.close()
                raise error

    def _ended(self, exc: BaseException | None) -> None:
        """Raise the error that ended the connection; return if it was closed on purpose."""
        if self._broken is not None:
            raise ConnectionClosedError(self._broken) from exc
        if self._state != _OPEN:
            return
        self.abort()
        raise ConnectionClosedError(f"connection to {self.url} dropped: {exc}") from exc

    # -- health and ending -----------------------------------------------------------------

    def drop(self, reason: str) -> None:
        """Declare the connection broken from any thread: ``recv`` raises ConnectionClosedError.

        The owner then reconnects, as after any other drop.
        """
        if self._state == _CLOSED:
            return
        self._broken = reason
        self.abort()

    def close(self) -> None:
        """Begin a graceful close from any thread: queued frames go first, then a close frame.

        Returns at once. ``recv`` returns None once the server answers; call :meth:`abort`
        if it has not by your deadline. Frames queued afterwards are refused.
        """
        with self._lock:
            if self._state != _OPEN:
                return
            self._state = _CLOSING
            self._wake.notify()

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
            self._wake.notify()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        _report_lost(leftover, self._broken or f"the connection to {self.url} was closed")
        callback = self.on_closed
        if callback is not None:
            callback(self)

    def wait_written(self, deadline: float) -> bool:
        """After :meth:`close`: wait until the writer has written everything (or ``deadline``)."""
        self._writer.join(max(0.0, deadline - time.monotonic()))
        return not self._writer.is_alive()

    def release(self) -> None:
        """Free the socket and the writer. Call from the receive thread once it stopped reading."""
        self.abort()
        if self._writer is not threading.current_thread():
            self._writer.join(timeout=self._config.write_timeout + 1)
        with contextlib.suppress(OSError):
            self._sock.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close`, :meth:`abort` or :meth:`drop` was called."""
        return self._state != _OPEN


def _handshake(url: str, config: TransportConfig) -> Any:
    """Connect and upgrade within ``config.connect_timeout``; the socket, ours from now on."""
    header = []
    if config.token:
        header.append(f"Authorization: Bearer {config.token}")
    sslopt: dict[str, object] | None = None
    if url.startswith("wss:"):
        sslopt = (config.tls or TlsOptions()).sslopt()
    ws: Any = websocket.WebSocket(sslopt=sslopt, skip_utf8_validation=True)
    safe_url = redact_url(url)
    try:
        with _handshakes.attempt(ws, config, tls=sslopt is not None) as attempt:
            ws.connect(url, header=header, timeout=config.connect_timeout, suppress_origin=True)
        if attempt.cut:
            raise OSError("the handshake was cut short: its stream or client stopped")
    except websocket.WebSocketBadStatusException as exc:
        ws.shutdown()
        body = exc.resp_body or b""
        reason = _reason_from_body(body if isinstance(body, bytes) else str(body).encode())
        raise handshake_error_for_status(exc.status_code, reason, safe_url) from exc
    except (websocket.WebSocketException, OSError, ValueError) as exc:
        ws.shutdown()
        raise StargateConnectionError(f"cannot connect to {safe_url}: {exc}") from exc
    sock = ws.sock
    ws.sock = None  # ours from now on; websocket-client must not touch it again
    sock.settimeout(_TICK)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    log.debug("connected to %s", safe_url)
    return sock


def _write_all(sock: Any, timeout: float, aborted: Callable[[], bool], data: bytes) -> None:
    """Write ``data`` whole; ``_WriteTimeout`` when no byte leaves for ``timeout`` seconds."""
    view = memoryview(data)
    deadline = time.monotonic() + timeout
    while view:
        try:
            sent = sock.send(view)
        except TimeoutError:
            if aborted():
                raise OSError("the connection was aborted") from None
            if time.monotonic() > deadline:
                raise _WriteTimeout() from None
            continue
        view = view[sent:]
        deadline = time.monotonic() + timeout


def _encode(batch: list[tuple[int, bytes | str, LostCallback | None]]) -> bytes:
    """The batch's frames, masked (one random draw for all of them), in one buffer."""
    return encode_frames(batch)


def _write_failure(exc: BaseException, url: str, timeout: float) -> str:
    if isinstance(exc, _WriteTimeout):
        return f"no write progress on {url} for {timeout:.1f} s"
    return f"write to {url} failed: {exc}"


def _report_lost(frames: list[tuple[int, bytes | str, LostCallback | None]], reason: str) -> None:
    for _, text, on_lost in frames:
        if on_lost is not None:
            try:
                on_lost(text, reason)
            except Exception:
                log.exception("reporting a lost frame failed")


def _reason_from_body(body: bytes) -> str:
    """The useful text of an error page: Jetty wraps the reason in HTML."""
    text = body.decode("utf-8", "replace").strip()
    for marker in ("<title>", "<pre>"):
        start = text.find(marker)
        if start >= 0:
            end = text.find("<", start + len(marker))
            return text[start + len(marker) : end].strip()
    return text[:500]


def _close_error(data: bytes, url: str) -> ConnectionClosedError:
    if len(data) < 2:
        return close_error(None, "", url)
    return close_error(int.from_bytes(data[:2], "big"), data[2:].decode("utf-8", "replace"), url)
