"""The metrics port of ``rxstargate run``: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process serves; ``/readyz`` 200 when every stream is
connected (503 otherwise, and while draining); ``/metrics`` the Prometheus text, which needs
prometheus-client (the ``metrics`` extra): without it, 501 and a line saying so.
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rxstargate.exceptions import ConfigurationError
from rxstargate.service._prometheus import Exposition, available, render

__all__ = ["MetricsServer"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    timeout = 0  # handle_request() runs once the port is readable: it never waits there
    exposition: Callable[[], Exposition]
    has_prometheus: bool


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._answer(200, b"ok\n")
        elif path == "/readyz":
            ready = self.server.exposition().app.ready
            self._answer(200 if ready else 503, b"ready\n" if ready else b"not ready\n")
        elif path == "/metrics":
            if not self.server.has_prometheus:
                self._answer(
                    501,
                    b"metrics need prometheus-client: pip install 'rxstargate[metrics]', or in a"
                    b" clone of rxstargate: pip install '.[metrics]'\n",
                )
                return
            body, content_type = render(self.server.exposition())
            self._answer(200, body, content_type)
        else:
            self._answer(404, b"not found: try /metrics, /healthz or /readyz\n")

    def _answer(
        self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not events: no log line per request."""


class MetricsServer:
    """Serves the metrics port on a thread of its own (``rxstargate-metrics``) until closed.

    Args:
        host: the address to listen on.
        port: the port (0 picks a free one; :attr:`port` says which).
        exposition: what to show, asked for at each request (from the server's threads).

    Raises:
        ConfigurationError: when the port cannot be bound (in use, or not allowed).
    """

    def __init__(self, host: str, port: int, exposition: Callable[[], Exposition]) -> None:
        try:
            self._server = _Server((host, port), _Handler)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
            ) from None
        self._server.exposition = exposition
        self._server.has_prometheus = available()
        self.host = host
        self.port: int = self._server.server_address[1]
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="rxstargate-metrics", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        """Answer requests until :meth:`close` writes to the wake socket (no polling)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_reader in ready:
                    return
                self._server.handle_request()

    @property
    def serves_metrics(self) -> bool:
        """Whether ``/metrics`` works (prometheus-client is installed)."""
        return self._server.has_prometheus

    def close(self) -> None:
        """Stop serving and close the port; waits for the serving thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._wake_writer.send(b"x")
        self._thread.join(timeout=5)
        self._server.server_close()
        self._wake_reader.close()
        self._wake_writer.close()
