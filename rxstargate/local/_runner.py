"""Running the gateway in a child process (``python -m rxstargate.local._serve``) or a thread."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time

from rxstargate.local._errors import LocalPulsarError, in_use, log_tail
from rxstargate.local._eventloop import loop_factory
from rxstargate.local._keepalive import Keepalive
from rxstargate.local._process import die_with_parent, port_in_use, terminate

# How long a stopping gateway process gets before SIGKILL (it bounds its own stop to 1 s).
STOP_GRACE_SECONDS = 1.5


class GatewayProcess:
    """The gateway in its own process, so its GIL does not compete with the caller's."""

    def __init__(
        self,
        broker_url: str,
        port: int,
        token: str | None,
        data_dir: str,
        keepalive: Keepalive | None = None,
        broker_metadata: str | None = None,
        *,
        own_session: bool = False,
    ) -> None:
        self._own_session = own_session
        self._args = [sys.executable, "-m", "rxstargate.local._serve", broker_url, str(port)]
        self.log_path = os.path.join(data_dir, "gateway.log")
        self._args += ["--log", os.path.join(data_dir, "gateway-client.log")]
        if broker_metadata is not None:
            self._args += ["--broker-metadata", broker_metadata]
        self._args += (keepalive or Keepalive()).arguments()
        self._token = token
        self._process: subprocess.Popen[bytes] | None = None
        self.port = port

    @property
    def pid(self) -> int | None:
        """The gateway's process id while it runs."""
        return self._process.pid if self._process else None

    def exit_status(self) -> int | None:
        """The exit status if the process has ended (it should not before ``stop()``)."""
        return self._process.poll() if self._process else None

    def start(self, timeout: float = 30.0) -> int:
        """Start the process and return the port it listens on.

        Raises:
            LocalPulsarError: when it exits or does not report its port within ``timeout``.
        """
        env = dict(os.environ)
        if self._token is not None:
            env["RXSTARGATE_GATEWAY_TOKEN"] = self._token  # not on the command line
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self._args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                preexec_fn=die_with_parent(),
                start_new_session=self._own_session,
                close_fds=True,
            )
        assert self._process.stdout is not None
        line = _read_line(self._process.stdout, timeout)
        self._process.stdout.close()
        if not line.startswith(b"LISTENING "):
            self.stop()
            tail = log_tail(self.log_path)
            if port_in_use(tail):
                raise LocalPulsarError(in_use(self.port))
            cause = tail.strip().splitlines()[-1] if tail.strip() else "no cause logged"
            raise LocalPulsarError(
                f"the WebSocket gateway did not start ({cause}); log tail:\n{tail}"
            )
        self.port = int(line.split()[1])
        return self.port

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after a short grace) and reap it."""
        if self._process is not None:
            terminate(self._process, timeout=STOP_GRACE_SECONDS)
            self._process = None


def _read_line(stream: object, timeout: float) -> bytes:
    result: list[bytes] = []
    reader = threading.Thread(
        target=lambda: result.append(stream.readline()),  # type: ignore[attr-defined]
        name="rxstargate-gateway-startup",
        daemon=True,
    )
    reader.start()
    reader.join(timeout)
    return result[0] if result else b""


class GatewayThread:
    """The gateway on an event loop in a thread of this process."""

    def __init__(
        self,
        broker_url: str,
        port: int,
        token: str | None,
        log_path: str | None = None,
        keepalive: Keepalive | None = None,
        broker_metadata: str | None = None,
    ) -> None:
        from rxstargate.local._gateway import Gateway

        self._gateway = Gateway(
            broker_url,
            port=port,
            token=token,
            log_path=log_path,
            keepalive=keepalive or Keepalive(),
            broker_metadata=broker_metadata,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port = port

    def start(self, timeout: float = 30.0) -> int:
        """Start the thread and return the bound port.

        Raises:
            LocalPulsarError: when the gateway fails to start.
        """
        self._thread = threading.Thread(target=self._run, name="rxstargate-gateway", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if time.monotonic() > deadline or not self._thread.is_alive():
                break
        if self._error is not None or not self._ready.is_set():
            self.stop()
            if port_in_use(str(self._error)):
                raise LocalPulsarError(in_use(self.port))
            raise LocalPulsarError(f"the WebSocket gateway did not start: {self._error}")
        return self.port

    def exit_status(self) -> int | None:
        """None while the gateway thread runs, 1 if it ended before ``stop()``."""
        if self._thread is None or self._thread.is_alive():
            return None
        return 1

    def _run(self) -> None:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.port = await self._gateway.start()
        except BaseException as exc:
            self._error = exc
            await self._gateway.stop()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._gateway.stop(timeout=STOP_GRACE_SECONDS)

    def stop(self) -> None:
        """Stop the gateway and join its thread (given up after a bounded wait)."""
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(STOP_GRACE_SECONDS + 1.0)
            self._thread = None
