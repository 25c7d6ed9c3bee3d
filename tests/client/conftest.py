"""Scripted WebSocket peers for component tests: a tiny fake Pulsar in the test process.

``client`` here is a client on a MemoryPulsar: the client's own behaviour is tested without a
broker (real-broker tests make their clients from the session's ``pulsar``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, Self

import pytest
from websockets.datastructures import Headers
from websockets.http11 import Response
from websockets.sync.server import Server, ServerConnection, serve

from rxstargate import MessageId

Handler = Callable[[ServerConnection], None]


class ScriptedPeer:
    """A WebSocket server on loopback whose handler is a test's script.

    ``refuse`` makes every handshake fail with that (status, body). ``paths`` records the
    request paths (with query) of every accepted connection, in order.
    """

    def __init__(self, handler: Handler, refuse: tuple[int, str] | None = None) -> None:
        self.handler = handler
        self.refuse = refuse
        self.paths: list[str] = []
        self.headers: list[Headers] = []
        self.connected = threading.Semaphore(0)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def _process_request(self, connection: ServerConnection, request: Any) -> Response | None:
        self.headers.append(request.headers)
        if self.refuse is not None:
            status, body = self.refuse
            return connection.respond(status, body)
        return None

    def _handle(self, connection: ServerConnection) -> None:
        self.paths.append(connection.request.path if connection.request else "")
        self.connected.release()
        with contextlib.suppress(Exception):  # the client went away mid-script
            self.handler(connection)

    def __enter__(self) -> ScriptedPeer:
        self._server = serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,
        )
        # shutdown() looks every 0.1 s for handler threads that are still ending: more often
        # here, where the client ends them at once.
        self._server.SHUTDOWN_POLLING_INTERVAL = 0.002
        self._thread = threading.Thread(target=self._server.serve_forever, name="peer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}"

    def wait_connections(self, count: int, timeout: float = 10.0) -> None:
        for _ in range(count):
            assert self.connected.acquire(timeout=timeout), "the client did not connect"


class MuteServer:
    """Accepts TCP connections and never answers them: a handshake waits until it is cut."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._stop = threading.Event()
        self.accepted: list[socket.socket] = []
        self.first = threading.Event()  # set once a connection came
        self._thread = threading.Thread(target=self._run, name="test-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"ws://{host}:{port}"

    def _run(self) -> None:
        while True:
            sock, _ = self._listener.accept()
            if self._stop.is_set():  # the connection that __exit__ makes to end the wait
                sock.close()
                return
            self._accepted(sock)

    def _accepted(self, sock: socket.socket) -> None:
        self.accepted.append(sock)
        self.first.set()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with socket.create_connection(self._listener.getsockname()[:2], timeout=5):
            pass  # wakes the accept() the thread waits in
        self._thread.join(timeout=5)
        for sock in self.accepted:
            sock.close()
        self._listener.close()


class SilentPeer(MuteServer):
    """Completes WebSocket handshakes, then reads and ignores everything: never a pong."""

    def __init__(self) -> None:
        super().__init__()
        self.connections = threading.Semaphore(0)

    def _accepted(self, sock: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(4096)
            if not chunk:
                break
            request += chunk
        key = ""
        for line in request.decode().split("\r\n"):
            if line.lower().startswith("sec-websocket-key:"):
                key = line.split(":", 1)[1].strip()
        accept = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
        )
        super()._accepted(sock)
        self.connections.release()


class Store:
    """A producer endpoint that stores everything (one ok ack per frame) and keeps payloads."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def __call__(self, ws: ServerConnection) -> None:
        ack_every_message(ws, self.payloads)


def ack_every_message(ws: ServerConnection, stored: list[bytes] | None = None) -> None:
    """A producer endpoint that stores everything: one ok ack per frame."""
    for entry, text in enumerate(ws):
        frame = json.loads(text)
        if stored is not None:
            stored.append(base64.b64decode(frame["payload"]))
        ws.send(
            json.dumps(
                {
                    "result": "ok",
                    "messageId": str(MessageId.from_parts(1, entry)),
                    "context": frame.get("context"),
                }
            )
        )


def message_frame(entry: int, payload: bytes = b"", **extra: Any) -> str:
    """A consumer message frame like Pulsar's."""
    frame = {
        "messageId": str(MessageId.from_parts(1, entry)),
        "payload": base64.b64encode(payload or str(entry).encode()).decode(),
        "properties": {},
        "publishTime": "2024-01-02T03:04:05.678Z",
        "redeliveryCount": 0,
    }
    frame.update(extra)
    return json.dumps(frame)


def send_empty_close(ws: ServerConnection) -> None:
    """Close the way Pulsar on Jetty does after a numbered error: a close frame with no status."""
    ws.socket.sendall(b"\x88\x00")
    ws.socket.shutdown(socket.SHUT_RDWR)


def drop(ws: ServerConnection) -> None:
    """Cut the TCP connection without a close frame."""
    ws.socket.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def client(memory: Any) -> Any:
    """An ``rs.Client`` on the test's MemoryPulsar (closed with it)."""
    return memory.client()


@pytest.fixture
def scripted_peer() -> Iterator[Callable[..., ScriptedPeer]]:
    """Make scripted peers; each one is stopped after the test."""
    peers: list[ScriptedPeer] = []

    def make(handler: Handler, refuse: tuple[int, str] | None = None) -> ScriptedPeer:
        peer = ScriptedPeer(handler, refuse).__enter__()
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.__exit__(None, None, None)
