"""LocalPulsar: the pulsar-lite broker plus the WebSocket gateway, on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from rxstargate.local._broker import Broker
from rxstargate.local._process import SpawnThread
from rxstargate.local._runner import GatewayProcess, GatewayThread

T = TypeVar("T")


class LocalPulsar:
    """A local Pulsar with a WebSocket API, for development and tests.

    Starts the pulsar-lite broker as a child process (killed with this process, even by SIGKILL)
    and rxstargate's WebSocket gateway in front of it, both on 127.0.0.1.

    Args:
        port: the WebSocket port; 0 picks a free one.
        broker_port: the broker's binary-protocol port; 0 picks a free one.
        data_dir: where the broker keeps data and logs; a given directory keeps its data across
            restarts, None uses a temporary one removed by ``stop()``.
        token: when set, the gateway refuses upgrades without ``Authorization: Bearer <token>``
            (or ``?token=<token>``) with 401.
        gateway_in_process: run the gateway in a thread of this process instead of a child
            process (the child process keeps its work off this process's GIL).

    Attributes:
        ws_url: ``ws://127.0.0.1:<port>`` once started.
        broker_url: ``pulsar://127.0.0.1:<broker_port>`` once started.

    Example:
        >>> with LocalPulsar() as pulsar:  # doctest: +SKIP
        ...     print(pulsar.ws_url)
        ws://127.0.0.1:41234
    """

    def __init__(
        self,
        port: int = 0,
        broker_port: int = 0,
        data_dir: str | os.PathLike[str] | None = None,
        token: str | None = None,
        *,
        gateway_in_process: bool = False,
    ) -> None:
        self.port = port
        self.broker_port = broker_port
        self.data_dir = os.fspath(data_dir) if data_dir is not None else None
        self.token = token
        self.gateway_in_process = gateway_in_process
        self._temp_dir: str | None = None
        self._broker: Broker | None = None
        self._gateway: GatewayProcess | GatewayThread | None = None
        self._spawner: SpawnThread | None = None

    @property
    def ws_url(self) -> str:
        """The WebSocket service URL, ``ws://127.0.0.1:<port>``."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def broker_url(self) -> str:
        """The broker URL for the official client, ``pulsar://127.0.0.1:<broker_port>``."""
        return f"pulsar://127.0.0.1:{self.broker_port}"

    @property
    def broker_pid(self) -> int | None:
        """The broker's process id while running."""
        return self._broker.pid if self._broker else None

    @property
    def gateway_pid(self) -> int | None:
        """The gateway's process id while running (None when it runs in this process)."""
        return self._gateway.pid if isinstance(self._gateway, GatewayProcess) else None

    def start(self) -> LocalPulsar:
        """Start the broker, then the gateway; returns once both accept connections.

        Raises:
            LocalPulsarError: when either does not start; the message carries the log tail.
        """
        if self._broker is not None:
            return self
        if self.data_dir is None:
            self._temp_dir = tempfile.mkdtemp(prefix="rxstargate-local-")
        directory = self.data_dir or self._temp_dir
        assert directory is not None
        os.makedirs(directory, exist_ok=True)
        if threading.current_thread() is not threading.main_thread():
            # Children die with the thread that started them: use one that lives until stop().
            self._spawner = SpawnThread()
        try:
            self._broker = Broker(directory, self.broker_port)
            self._in_spawner(self._broker.start)
            self.broker_port = self._broker.port
            if self.gateway_in_process:
                log = os.path.join(directory, "gateway-client.log")
                self._gateway = GatewayThread(self.broker_url, self.port, self.token, log)
            else:
                self._gateway = GatewayProcess(self.broker_url, self.port, self.token, directory)
            self.port = self._in_spawner(self._gateway.start)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the gateway and the broker; leaves no process or thread behind. Idempotent."""
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
        if self._broker is not None:
            self._broker.stop()
            self._broker = None
        if self._spawner is not None:
            self._spawner.close()
            self._spawner = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def _in_spawner(self, function: Callable[[], T]) -> T:
        return self._spawner.call(function) if self._spawner is not None else function()

    def __enter__(self) -> LocalPulsar:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def run_local(
    port: int = 8080,
    broker_port: int = 6650,
    data_dir: str | os.PathLike[str] | None = None,
    token: str | None = None,
) -> None:
    """Run local Pulsar in the foreground until SIGINT or SIGTERM (what ``rxstargate local`` does).

    Raises:
        LocalPulsarError: when it does not start.
    """
    stopped = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stopped.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    local = LocalPulsar(port=port, broker_port=broker_port, data_dir=data_dir, token=token)
    try:
        local.start()
        print(f"Pulsar WebSocket API: {local.ws_url}", flush=True)
        print(f"Pulsar broker:        {local.broker_url}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while not stopped.wait(0.5):
            pass
    finally:
        local.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
