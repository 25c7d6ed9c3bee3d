"""``rxstargate run --processes N``: N worker processes of one App, supervised.

Each worker is ``python -m rxstargate.service._worker`` running the whole app (so a Shared,
Key_Shared or Failover subscription spreads over them), in a session of its own (a Ctrl-C in
the terminal reaches the supervisor only, which then tells each worker once). A worker sends
its figures as JSON lines on a pipe every quarter second; the supervisor sums them for the
one metrics port, keeping what workers that died had counted. A worker that dies is restarted
after a capped, growing delay. A worker whose supervisor vanished sees its control pipe close
and drains on its own.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

from rxstargate._reconnect import Backoff
from rxstargate.service._metrics import AppMetrics
from rxstargate.service._monitor import emit
from rxstargate.service._prometheus import Exposition
from rxstargate.service._runner import StopSignals

__all__ = ["CONFIGURATION_FAILED", "Supervisor"]

#: A worker's exit status when it cannot load the app: restarting would not help.
CONFIGURATION_FAILED = 2
#: Seconds a worker gets after its drain timeout to close its sockets, before SIGKILL.
GRACE = 5.0
#: A worker that ran this long before it died starts the restart backoff over.
STEADY = 30.0


@dataclass(eq=False)
class _Worker:
    """One worker slot: the process in it now (if any) and what it reported last."""

    index: int
    delays: Iterator[float]
    process: subprocess.Popen[bytes] | None = None
    status_fd: int | None = None
    control_fd: int | None = None
    buffer: bytes = b""
    snapshot: AppMetrics | None = None
    started: float = 0.0
    restart_at: float | None = None


def _describe(status: int) -> str:
    if status < 0:
        return f"killed by {signal.Signals(-status).name}"
    return f"exited with status {status}"


class Supervisor:
    """Runs ``processes`` workers of the app that ``reference`` names, until a signal.

    Args:
        reference: the APP argument (a TOML file or ``module:attribute``).
        processes: how many workers.
        drain_timeout: seconds each worker gets to drain after SIGTERM.
        log_format: ``text`` or ``json``, for the workers too.
        log_level: the workers' log level.
        restart: the delays between restarts of a worker that died.
    """

    def __init__(
        self,
        reference: str,
        *,
        processes: int,
        drain_timeout: float,
        log_format: str = "text",
        log_level: str = "INFO",
        restart: Backoff | None = None,
    ) -> None:
        self._reference = reference
        self._drain_timeout = drain_timeout
        self._log = (log_format, log_level)
        self._restart = restart or Backoff(initial=0.5, cap=30.0, give_up_after=None)
        self._workers = [_Worker(i, self._restart.delays()) for i in range(1, processes + 1)]
        self._lock = threading.Lock()
        self._retired = AppMetrics(ready=True, processes=0)  # counters of workers that ended
        self._restarts = 0
        self._stopping = False
        self._status = 0
        self._selector = selectors.DefaultSelector()

    def exposition(self) -> Exposition:
        """The sum of the workers' figures (safe from any thread)."""
        with self._lock:
            live = [w.snapshot for w in self._workers if w.process is not None and w.snapshot]
            ready = not self._stopping and len(live) == len(self._workers)
            total = AppMetrics.total([self._retired, *live])
            restarts = self._restarts
        app = replace(total, ready=ready and all(s.ready for s in live), processes=len(live))
        return Exposition(app, workers=len(live), worker_restarts=restarts)

    def run(self) -> int:
        """Start the workers and supervise them until a signal and their drain; the exit
        status: 0 when every worker drained, 1 otherwise, 2 when a worker cannot load the app.
        """
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        previous = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        signals = StopSignals(on_second=self._kill_all).install()
        self._selector.register(wake_read, selectors.EVENT_READ)
        try:
            for worker in self._workers:
                self._spawn(worker)
            return self._supervise(signals, wake_read)
        finally:
            signals.restore()
            signal.set_wakeup_fd(previous)
            self._kill_all()
            self._selector.close()
            os.close(wake_read)
            os.close(wake_write)

    def _supervise(self, signals: StopSignals, wake_read: int) -> int:
        deadline: float | None = None
        while True:
            if deadline is None and (signals.requested.is_set() or self._status):
                deadline = self._begin_stop()
            now = time.monotonic()
            if deadline is not None and all(w.process is None for w in self._workers):
                emit(logging.INFO, "stopped", "every worker stopped")
                return self._status
            if deadline is not None and now > deadline:
                emit(
                    logging.ERROR,
                    "drain-timeout",
                    "workers still running after the drain timeout: killing them",
                )
                return 1
            for key, _ in self._selector.select(self._wait(deadline, now)):
                if key.fd == wake_read:
                    _drain_pipe(wake_read)
                else:
                    self._read(key.data)
            self._reap()
            self._restart_due()

    def _wait(self, deadline: float | None, now: float) -> float:
        due = [w.restart_at for w in self._workers if w.restart_at is not None]
        if deadline is not None:
            due.append(deadline)
        return max(0.0, min([now + 0.5, *due]) - now)

    def _spawn(self, worker: _Worker) -> None:
        status_read, status_write = os.pipe()
        control_read, control_write = os.pipe()
        fmt, level = self._log
        command = [
            sys.executable,
            "-m",
            "rxstargate.service._worker",
            self._reference,
            "--index",
            str(worker.index),
            "--status-fd",
            str(status_write),
            "--control-fd",
            str(control_read),
            "--drain-timeout",
            repr(self._drain_timeout),
            "--log-format",
            fmt,
            "--log-level",
            level,
        ]
        try:
            process = subprocess.Popen(
                command,
                pass_fds=(status_write, control_read),
                start_new_session=True,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            for fd in (status_read, control_write):
                os.close(fd)
            emit(
                logging.ERROR,
                "worker-failed",
                "worker %d cannot start: %s",
                worker.index,
                exc,
                worker=worker.index,
            )
            worker.restart_at = time.monotonic() + next(worker.delays)
            return
        finally:
            os.close(status_write)
            os.close(control_read)
        with self._lock:
            worker.process, worker.snapshot = process, None
        worker.status_fd, worker.control_fd, worker.buffer = status_read, control_write, b""
        worker.started, worker.restart_at = time.monotonic(), None
        self._selector.register(status_read, selectors.EVENT_READ, worker)
        emit(
            logging.INFO,
            "worker-started",
            "worker %d started (pid %d)",
            worker.index,
            process.pid,
            worker=worker.index,
            worker_pid=process.pid,
        )

    def _read(self, worker: _Worker) -> None:
        assert worker.status_fd is not None
        try:
            data = os.read(worker.status_fd, 65536)
        except OSError:
            data = b""
        if not data:  # the worker is gone (or going): reap it
            self._selector.unregister(worker.status_fd)
            os.close(worker.status_fd)
            worker.status_fd = None
            return
        *lines, worker.buffer = (worker.buffer + data).split(b"\n")
        for line in lines[-1:]:  # the latest figures are all that matter
            try:
                snapshot = AppMetrics.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError):
                emit(
                    logging.WARNING,
                    "worker-garbled",
                    "worker %d sent unreadable figures",
                    worker.index,
                    worker=worker.index,
                )
                continue
            with self._lock:
                worker.snapshot = snapshot

    def _reap(self) -> None:
        for worker in self._workers:
            process = worker.process
            if process is None or (worker.status_fd is not None and process.poll() is None):
                continue
            try:
                status = process.wait(timeout=GRACE)
            except subprocess.TimeoutExpired:  # it closed its pipe but lives on: end it
                process.kill()
                status = process.wait()
            self._retire(worker)
            if self._stopping:
                emit(
                    logging.INFO,
                    "worker-stopped",
                    "worker %d %s",
                    worker.index,
                    _describe(status),
                    worker=worker.index,
                    status=status,
                )
                # Killed by our SIGTERM: it was still starting (it takes the signal once its
                # app can drain), so it had nothing to drain.
                self._status = self._status or (0 if status in (0, -signal.SIGTERM) else 1)
            else:
                self._died(worker, status)

    def _retire(self, worker: _Worker) -> None:
        if worker.status_fd is not None:
            self._selector.unregister(worker.status_fd)
            os.close(worker.status_fd)
            worker.status_fd = None
        if worker.control_fd is not None:
            os.close(worker.control_fd)
            worker.control_fd = None
        with self._lock:
            if worker.snapshot is not None:
                self._retired = self._retired + worker.snapshot.counters_only()
            worker.process, worker.snapshot = None, None

    def _died(self, worker: _Worker, status: int) -> None:
        if status == CONFIGURATION_FAILED:
            emit(
                logging.ERROR,
                "worker-failed",
                "worker %d cannot load the app: stopping",
                worker.index,
                worker=worker.index,
            )
            self._status = CONFIGURATION_FAILED
            return
        if time.monotonic() - worker.started >= STEADY:
            worker.delays = self._restart.delays()
        delay = next(worker.delays)
        worker.restart_at = time.monotonic() + delay
        emit(
            logging.WARNING,
            "worker-died",
            "worker %d %s; restarting in %.1f s",
            worker.index,
            _describe(status),
            delay,
            worker=worker.index,
            status=status,
        )

    def _restart_due(self) -> None:
        now = time.monotonic()
        for worker in self._workers:
            if worker.restart_at is not None and worker.restart_at <= now and not self._stopping:
                with self._lock:
                    self._restarts += 1
                self._spawn(worker)

    def _begin_stop(self) -> float:
        with self._lock:
            self._stopping = True
        emit(
            logging.INFO,
            "draining",
            "stopping %d worker(s): draining within %.1f s",
            sum(w.process is not None for w in self._workers),
            self._drain_timeout,
        )
        for worker in self._workers:
            worker.restart_at = None
            if worker.process is not None and worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        return time.monotonic() + self._drain_timeout + GRACE

    def _kill_all(self) -> None:
        for worker in self._workers:
            process = worker.process
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def _drain_pipe(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
