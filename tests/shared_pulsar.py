"""One local Pulsar for every worker of a parallel test run (pytest-xdist).

The run's controller gives each worker the same empty folder. The first worker that needs a
broker starts this file as a program, under a lock on that folder: it forks a server that runs
local Pulsar, in a session of its own, and returns once the server has written its endpoint
(``endpoint.json``) or failed. The other workers read the endpoint. The server outlives the
worker that started it (a worker ends when it has no tests left, others may still run theirs)
and runs until the controller stops it when the run ends (``stop``), or until the controller
is gone: it checks every half second, so even a killed run leaves nothing running.

The server holds an exclusive lock on ``alive.lock`` for as long as it runs; a free lock says
it has ended (a zombie or a vanished process alike).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENDPOINT = "endpoint.json"
PID = "server.pid"
ALIVE = "alive.lock"
START_TIMEOUT = 90.0  # local Pulsar starts in a few seconds; a loaded machine may need more
STOP_TIMEOUT = 10.0  # LocalPulsar.stop() returns within about 2 s


@contextmanager
def _locked(path: Path, operation: int = fcntl.LOCK_EX) -> Iterator[None]:
    with open(path, "a") as file:
        fcntl.flock(file, operation)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _is_running(folder: Path) -> bool:
    """Whether a server holds the folder's alive lock."""
    with open(folder / ALIVE, "a") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(file, fcntl.LOCK_UN)
        return False


def endpoint(folder: Path, controller_pid: int) -> tuple[str, str]:
    """The shared local Pulsar's WebSocket and broker URLs, started first if nobody did yet.

    Raises:
        RuntimeError: the server did not start (with its output).
    """
    with _locked(folder / "start.lock"):
        found = folder / ENDPOINT
        if not found.exists():
            started = subprocess.run(
                [sys.executable, __file__, str(folder), str(controller_pid)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT + STOP_TIMEOUT,
                check=False,
            )
            if started.returncode != 0 or not found.exists():
                raise RuntimeError(
                    f"the tests' local Pulsar did not start: {started.stdout}{started.stderr}"
                )
        data = json.loads(found.read_text())
    return str(data["ws_url"]), str(data["broker_url"])


def stop(folder: Path) -> None:
    """Stop the folder's server if one was started; returns once it has ended."""
    if not (folder / PID).exists() or not _is_running(folder):
        return
    pid = int((folder / PID).read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _is_running(folder) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_running(folder):  # its broker and gateway die with it
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _serve(folder: Path, controller_pid: int, ready: int) -> None:
    """The server: local Pulsar until SIGTERM or until the controller is gone."""
    from rxstargate.local import LocalPulsar

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    with LocalPulsar(data_dir=folder / "data") as local:
        data = {"ws_url": local.ws_url, "broker_url": local.broker_url}
        written = folder / f"{ENDPOINT}.part"
        written.write_text(json.dumps(data))
        written.rename(folder / ENDPOINT)
        os.write(ready, b"ok")
        os.close(ready)
        while not stopping.wait(0.5):
            try:
                os.kill(controller_pid, 0)
            except ProcessLookupError:
                break


def main(folder: Path, controller_pid: int) -> int:
    """Fork the server; return 0 once it is ready, 1 (its output printed) if it ended first."""
    read_end, write_end = os.pipe()
    if os.fork() == 0:  # the server: its own session, so a terminal's Ctrl-C leaves it to stop()
        os.close(read_end)
        os.setsid()
        (folder / PID).write_text(str(os.getpid()))
        log = os.open(folder / "server.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(log, 1)
        os.dup2(log, 2)
        with _locked(folder / ALIVE):
            try:
                _serve(folder, controller_pid, write_end)
            except BaseException as error:
                print(f"{type(error).__name__}: {error}", file=sys.stderr, flush=True)
                os._exit(1)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as ready:
        if ready.read() == b"ok":
            return 0
    print((folder / "server.log").read_text(), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2])))
