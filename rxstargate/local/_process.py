"""Child processes that die with their parent, and free loopback ports."""

from __future__ import annotations

import ctypes
import errno
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when its parent dies (Linux only).

    Returns None on platforms without ``prctl``; the child then relies on ``stop()``.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def _preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return _preexec


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(log_text: str) -> bool:
    """Whether a child's log says it could not bind its port (EADDRINUSE)."""
    return f"[Errno {errno.EADDRINUSE}]" in log_text or "address already in use" in log_text.lower()


def accepts_connections(port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def terminate(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Stop a child: SIGTERM, then SIGKILL if it lingers; always reaps it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


class SpawnThread:
    """A thread that starts children and outlives them, for callers that are not the main thread.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so children started from
    a short-lived thread would be killed with it. This thread lives until ``close()``.
    """

    def __init__(self) -> None:
        self._requests: queue.Queue[tuple[Callable[[], object], Future[object]] | None]
        self._requests = queue.Queue()
        self._thread = threading.Thread(
            target=self._run, name="rxstargate-local-spawner", daemon=True
        )
        self._thread.start()

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the spawning thread and return its result."""
        future: Future[object] = Future()
        self._requests.put((function, future))
        return future.result()  # type: ignore[return-value]

    def close(self) -> None:
        """End the thread (after its children were stopped)."""
        self._requests.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (request := self._requests.get()) is not None:
            function, future = request
            try:
                future.set_result(function())
            except BaseException as exc:
                future.set_exception(exc)
