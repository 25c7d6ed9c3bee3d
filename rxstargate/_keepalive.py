"""One thread per client that queues pings on idle sockets and drops the silent ones."""

from __future__ import annotations

import threading
import time
import weakref

from rxstargate._seam import Transport

__all__ = ["Keepalive"]


class Keepalive:
    """One thread per client that queues pings on idle connections and drops silent ones.

    It holds connections weakly and forgets each one when it closes.
    """

    def __init__(self, interval: float, timeout: float) -> None:
        self._tick = max(0.02, min(1.0, min(interval, timeout) / 4))
        self._connections: weakref.WeakSet[Transport] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, connection: Transport) -> None:
        """Keep ``connection`` alive until it closes."""
        with self._lock:
            if self._stop.is_set():
                return
            self._connections.add(connection)
            connection.on_closed = self._forget
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="rxstargate-keepalive", daemon=True
                )
                self._thread.start()

    def _forget(self, connection: Transport) -> None:
        with self._lock:
            self._connections.discard(connection)

    @property
    def watched(self) -> int:
        """How many connections are watched now."""
        with self._lock:
            return len(self._connections)

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            with self._lock:
                connections = list(self._connections)
            now = time.monotonic()
            for connection in connections:
                connection.keepalive(now)
            del connections

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
