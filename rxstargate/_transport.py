"""The WebSocket transport: connect, TLS, headers, keepalive, close codes and error translation.

This is the only module that imports ``websocket`` (websocket-client). Everything it raises is
an rxstargate exception: websocket-client's exceptions are translated here, once, with
``raise ... from exc``.

Threading model: a :class:`Connection` is written to by any thread (sends hold a lock) and
read by exactly one thread (its owner's receive thread). :meth:`Connection.abort` may be
called from any thread and wakes the reader up. Keepalive pings are sent by the
:class:`Keepalive` thread of the client, which also aborts connections whose pong is late.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import websocket

from rxstargate.exceptions import (
    ConnectionClosedError,
    StargateConnectionError,
    handshake_error_for_status,
)

__all__ = ["Connection", "Keepalive", "TlsOptions", "TransportConfig", "redact_url"]

log = logging.getLogger("rxstargate.transport")

_OP_TEXT = websocket.ABNF.OPCODE_TEXT
_OP_BINARY = websocket.ABNF.OPCODE_BINARY
_OP_CLOSE = websocket.ABNF.OPCODE_CLOSE
_OP_PONG = websocket.ABNF.OPCODE_PONG
_OP_PING = websocket.ABNF.OPCODE_PING
_SOCKET_ERRORS = (websocket.WebSocketException, OSError, AttributeError, ValueError)
_DATA_OPCODES = (_OP_TEXT, _OP_BINARY, websocket.ABNF.OPCODE_CONT)

#: Frames the receive thread may hold back for one write, and for how long (seconds).
_MAX_DEFERRED = 256
_MAX_DELAY = 0.005
_FLUSH_TICK = 0.02

#: Close codes after which reconnecting is pointless (policy violation, bad data).
_FATAL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009, 1010})


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS settings for ``wss://`` URLs.

    Attributes:
        ca_file: PEM file of the CAs to trust (the system store when None).
        cert_file: client certificate (PEM), for servers that authenticate by certificate.
        key_file: the client certificate's private key (PEM).
        check_hostname: verify that the certificate names the host (keep True in production).
        verify: verify the server certificate at all (False only for tests).

    Example:
        >>> TlsOptions(ca_file="ca.pem").check_hostname
        True
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    check_hostname: bool = True
    verify: bool = True

    def sslopt(self) -> dict[str, object]:
        """The options websocket-client expects, as one ``ssl.SSLContext``."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context.check_hostname = self.check_hostname
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return {"context": context}


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """How sockets are opened: credentials, TLS and timeouts (seconds)."""

    token: str | None = None
    tls: TlsOptions | None = None
    connect_timeout: float = 10.0
    ping_interval: float = 30.0
    ping_timeout: float = 10.0

    def __repr__(self) -> str:
        token = "<hidden>" if self.token else None
        return (
            f"TransportConfig(token={token}, tls={self.tls!r},"
            f" connect_timeout={self.connect_timeout}, ping_interval={self.ping_interval},"
            f" ping_timeout={self.ping_timeout})"
        )


def redact_url(url: str) -> str:
    """``url`` without a ``token`` query parameter or user info, for logs and errors.

    Example:
        >>> redact_url("ws://u:p@h:1/ws?token=abc&x=1")
        'ws://h:1/ws?token=<hidden>&x=1'
    """
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        "token=<hidden>" if item.startswith("token=") else item
        for item in parts.query.split("&")
        if item
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Connection:
    """One open WebSocket, already past its handshake.

    Use :meth:`open` to create one. ``recv()`` returns text frames; pings, pongs and
    binary frames are handled here. The connection ends with a :class:`ConnectionClosedError`
    (the server closed it or it dropped) or after :meth:`abort` (``recv`` returns None).
    """

    def __init__(self, ws: Any, url: str) -> None:
        self._ws: Any = ws
        self.url = url
        self._reader: int | None = None
        self._deferred: list[str] = []
        self._deferred_since = 0.0
        self._defer_lock = threading.Lock()
        # Read the socket in large chunks: websocket-client asks for each frame's header,
        # length and payload separately (three system calls per message otherwise).
        ws.frame_buffer.recv = _BufferedRecv(ws._recv, self._before_read)
        self._aborted = False
        self._last_pong = time.monotonic()
        self._ping_sent: float | None = None
        self._broken: str | None = None

    @classmethod
    def open(cls, url: str, config: TransportConfig) -> Connection:
        """Connect and complete the handshake within ``config.connect_timeout``.

        Raises:
            HandshakeError: a typed subclass, when the server refuses the upgrade.
            StargateConnectionError: when the host cannot be reached or the handshake fails.
        """
        header = []
        if config.token:
            header.append(f"Authorization: Bearer {config.token}")
        sslopt: dict[str, object] | None = None
        if url.startswith("wss:"):
            sslopt = (config.tls or TlsOptions()).sslopt()
        ws: Any = websocket.WebSocket(
            sslopt=sslopt, enable_multithread=True, skip_utf8_validation=True
        )
        safe_url = redact_url(url)
        try:
            ws.connect(url, header=header, timeout=config.connect_timeout, suppress_origin=True)
        except websocket.WebSocketBadStatusException as exc:
            ws.shutdown()
            body = exc.resp_body or b""
            reason = _reason_from_body(body if isinstance(body, bytes) else str(body).encode())
            raise handshake_error_for_status(exc.status_code, reason, safe_url) from exc
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            ws.shutdown()
            raise StargateConnectionError(f"cannot connect to {safe_url}: {exc}") from exc
        if ws.sock is not None:
            ws.sock.settimeout(None)
            ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.debug("connected to %s", safe_url)
        return cls(ws, safe_url)

    def send(self, text: str) -> None:
        """Send one text frame. Thread-safe.

        Frames sent by the receive thread itself (acks and permits from a synchronous
        pipeline) are coalesced: they leave in one system call just before that thread
        next waits for the socket (so never while it is idle), after 256 frames, or when the
        keepalive thread finds them older than a few milliseconds.

        Raises:
            StargateConnectionError: when the socket is gone.
        """
        if self._reader == threading.get_ident():
            with self._defer_lock:
                if not self._deferred:
                    self._deferred_since = time.monotonic()
                self._deferred.append(text)
                if len(self._deferred) < _MAX_DEFERRED:
                    return
            self._flush_or_raise()
            return
        try:
            self._ws.send(text, _OP_TEXT)
        except (websocket.WebSocketException, OSError, AttributeError) as exc:
            raise StargateConnectionError(f"send failed on {self.url}: {exc}") from exc

    def _flush_or_raise(self) -> None:
        try:
            self._flush()
        except _SOCKET_ERRORS as exc:
            raise StargateConnectionError(f"send failed on {self.url}: {exc}") from exc

    def _before_read(self) -> None:
        if self._deferred:
            self._flush()

    def flush_stale(self, now: float) -> None:
        """Write deferred frames older than a few milliseconds (the keepalive thread calls it).

        This bounds how long an ack waits while the receive thread runs a slow callback.
        """
        if self._deferred and now - self._deferred_since >= _MAX_DELAY and not self._aborted:
            with contextlib.suppress(*_SOCKET_ERRORS):
                self._flush()

    def _flush(self) -> None:
        """Write the receive thread's deferred frames (called before it blocks on a read)."""
        with self._defer_lock:
            deferred, self._deferred = self._deferred, []
        if not deferred:
            return
        data = b"".join(websocket.ABNF.create_frame(text, _OP_TEXT).format() for text in deferred)
        with self._ws.lock:
            while data:
                sent = self._ws._send(data)
                data = data[sent:]

    def recv(self) -> str | None:
        """The next text frame, or None after :meth:`abort`. Only the owner thread calls it.

        Raises:
            ConnectionClosedError: when the server closed the socket, it dropped, or a pong
                was missed (``code`` is None for drops).
        """
        ws: Any = self._ws
        self._reader = threading.get_ident()
        while True:
            try:
                frame = ws.recv_frame()
                opcode = frame.opcode
                if opcode in _DATA_OPCODES:
                    ws.cont_frame.validate(frame)
                    ws.cont_frame.add(frame)
                    if not ws.cont_frame.is_fire(frame):
                        continue
                    _, frame = ws.cont_frame.extract(frame)
                    data = frame.data
                    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data
            except (websocket.WebSocketException, OSError, AttributeError, ValueError) as exc:
                if self._broken is not None:
                    raise ConnectionClosedError(self._broken) from exc
                if self._aborted:
                    return None
                raise ConnectionClosedError(f"connection to {self.url} dropped: {exc}") from exc
            if opcode == _OP_PONG:
                self._last_pong = time.monotonic()
                self._ping_sent = None
            elif opcode == _OP_PING:
                with contextlib.suppress(websocket.WebSocketException, OSError, AttributeError):
                    ws.pong(frame.data)
            elif opcode == _OP_CLOSE:
                with contextlib.suppress(*_SOCKET_ERRORS):
                    ws.send_close(1000, b"")
                if self._aborted and self._broken is None:
                    return None
                raise _close_error(frame.data or b"", self.url)

    def keepalive(self, now: float, interval: float, timeout: float) -> None:
        """Send a ping when due; abort when the previous one went unanswered for ``timeout``."""
        if self._aborted:
            return
        if self._ping_sent is not None:
            if now - self._ping_sent > timeout:
                log.warning(
                    "no pong from %s within %.1f s: dropping the connection", self.url, timeout
                )
                self.drop(f"no pong from {self.url} within {timeout:.1f} s")
            return
        if now - self._last_pong >= interval:
            self._ping_sent = now
            try:
                self._ws.ping(b"rxstargate")
            except (websocket.WebSocketException, OSError, AttributeError) as exc:
                self.drop(f"ping to {self.url} failed: {exc}")

    def drop(self, reason: str) -> None:
        """Declare the connection broken from any thread: ``recv`` raises ConnectionClosedError.

        The owner then reconnects, as after any other drop.
        """
        if self._aborted:
            return
        self._broken = reason
        self.abort()

    def abort(self) -> None:
        """Close from any thread: say goodbye if possible, then wake the reader up."""
        if self._aborted:
            return
        self._aborted = True
        if self._broken is None:
            if self._deferred:  # acks settled just before closing still go out
                with contextlib.suppress(*_SOCKET_ERRORS):
                    self._flush()
            with contextlib.suppress(*_SOCKET_ERRORS):
                self._ws.send_close(1000, b"")
        sock = self._ws.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def release(self) -> None:
        """Free the socket. Call from the receive thread once it has stopped reading."""
        self._aborted = True
        self._ws.shutdown()

    @property
    def aborted(self) -> bool:
        """True once :meth:`abort` was called."""
        return self._aborted


class _BufferedRecv:
    """A ``recv(n)`` that returns at most ``n`` bytes from 64 KiB reads of the real socket."""

    __slots__ = ("_before_read", "_buffer", "_position", "_raw")

    def __init__(self, raw: Any, before_read: Any) -> None:
        self._raw = raw
        self._before_read = before_read
        self._buffer = b""
        self._position = 0

    def __call__(self, size: int) -> bytes:
        if self._position >= len(self._buffer):
            self._before_read()
            self._buffer = self._raw(65536)
            self._position = 0
        start = self._position
        self._position = start + size
        if start == 0 and size >= len(self._buffer):
            return self._buffer
        return self._buffer[start : start + size]


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
        error = ConnectionClosedError(
            f"{url} closed the socket with no status (1005): a server-side failure", 1005
        )
        return error
    code = int.from_bytes(data[:2], "big")
    reason = data[2:].decode("utf-8", "replace")
    if code == 1000:
        text = f"{url} closed the socket normally"
    elif 1 <= code <= 8:
        text = f"{url} closed the socket with Pulsar error {code}: a server-side failure"
    else:
        text = f"{url} closed the socket with code {code}"
    if reason:
        text += f": {reason}"
    error = ConnectionClosedError(text, code, reason)
    if code in _FATAL_CLOSE_CODES:
        error.retriable = False
    return error


class Keepalive:
    """One thread per client that pings idle connections and drops those whose pong is late."""

    def __init__(self, interval: float, timeout: float) -> None:
        self._interval = interval
        self._timeout = timeout
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, connection: Connection) -> None:
        """Keep ``connection`` alive until it is aborted or garbage."""
        with self._lock:
            if self._stop.is_set():
                return
            self._connections.add(connection)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="rxstargate-keepalive", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        ping_tick = max(0.01, min(self._interval, self._timeout) / 4)
        next_ping = 0.0
        while not self._stop.wait(_FLUSH_TICK):
            with self._lock:
                connections = list(self._connections)
            now = time.monotonic()
            for connection in connections:
                connection.flush_stale(now)
            if now >= next_ping:
                next_ping = now + ping_tick
                for connection in connections:
                    connection.keepalive(now, self._interval, self._timeout)

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
