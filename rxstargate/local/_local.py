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
from rxstargate.local._errors import LocalPulsarError, in_use, require_local_extra
from rxstargate.local._keepalive import IDLE_TIMEOUT, Keepalive
from rxstargate.local._process import SpawnThread, accepts_connections
from rxstargate.local._runner import GatewayProcess, GatewayThread

LOG_FILES = ("broker.log", "gateway.log", "gateway-client.log")

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
            (or ``?token=<token>``) with 401. The broker port takes no token: it accepts any
            client, on 127.0.0.1 only.
        gateway_in_process: run the gateway in a thread of this process instead of a child
            process (the child process keeps its work off this process's GIL).
        idle_timeout: seconds after which a socket on which no data went either way is closed
            (with 1001, as Pulsar's WebSocket service closes idle sessions) and what it held is
            released; 300 s as in Pulsar (None: never). A peer whose host vanished is found
            sooner, by TCP keepalive; a closed or reset socket is released at once.
        ping_interval: seconds between the gateway's pings to each socket (None, as in Pulsar:
            no pings). Pings keep idle sockets from timing out; no answer is required.
        ping_timeout: seconds a socket has to answer a ping before it is dropped (None: never,
            as in Pulsar). Most WebSocket libraries answer pings only while the program reads,
            so this drops peers that are merely slow to read.
        own_session: start the broker and the gateway process in a session of their own, so
            that a terminal's Ctrl-C, which goes to its whole foreground process group, reaches
            only this process, which then stops them in order (``stop()``, or leaving the
            ``with`` block). Only for owners that always stop them: on Linux they still die
            with this process, elsewhere a crash would leave them running.

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
        idle_timeout: float | None = IDLE_TIMEOUT,
        ping_interval: float | None = None,
        ping_timeout: float | None = None,
        own_session: bool = False,
    ) -> None:
        self.port = port
        self.own_session = own_session
        self.broker_port = broker_port
        self.data_dir = os.fspath(data_dir) if data_dir is not None else None
        self.token = token
        self.gateway_in_process = gateway_in_process
        self.keepalive = Keepalive(idle_timeout, ping_interval, ping_timeout)
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

    @property
    def directory(self) -> str | None:
        """The data directory in use (``data_dir`` or the temporary one) while running."""
        return self.data_dir or self._temp_dir

    @property
    def is_temporary(self) -> bool:
        """Whether the data directory is a temporary one that ``stop()`` removes."""
        return self.data_dir is None

    def failure(self) -> str | None:
        """Why local Pulsar stopped working if the broker or the gateway ended; None if both run.

        Example:
            ``"the pulsar-lite broker (pid 4242) exited: killed by SIGKILL"``
        """
        children: list[tuple[str, Broker | GatewayProcess | GatewayThread | None]] = [
            ("the pulsar-lite broker", self._broker),
            ("the WebSocket gateway", self._gateway),
        ]
        for name, child in children:
            status = child.exit_status() if child is not None else None
            if status is not None:
                pid = getattr(child, "pid", None)
                where = f" (pid {pid})" if pid else ""
                return f"{name}{where} exited: {_describe_status(status)}"
        return None

    def start(self) -> LocalPulsar:
        """Start the broker, then the gateway; returns once both accept connections.

        Raises:
            LocalPulsarError: when either does not start (the message carries the log tail),
                or without the ``local`` extra (the message says how to install it).
        """
        if self._broker is not None:
            return self
        require_local_extra()
        if self.data_dir is None:
            self._temp_dir = tempfile.mkdtemp(prefix="rxstargate-local-")
        directory = self.data_dir or self._temp_dir
        assert directory is not None
        os.makedirs(directory, exist_ok=True)
        if threading.current_thread() is not threading.main_thread():
            # Children die with the thread that started them: use one that lives until stop().
            self._spawner = SpawnThread()
        try:
            if self.port and accepts_connections(self.port):
                raise LocalPulsarError(in_use(self.port))
            self._broker = Broker(directory, self.broker_port, own_session=self.own_session)
            self._in_spawner(self._broker.start)
            self.broker_port = self._broker.port
            if self.gateway_in_process:
                log = os.path.join(directory, "gateway-client.log")
                self._gateway = GatewayThread(
                    self.broker_url,
                    self.port,
                    self.token,
                    log,
                    self.keepalive,
                    broker_metadata=self._broker.metadata_path,
                )
            else:
                self._gateway = GatewayProcess(
                    self.broker_url,
                    self.port,
                    self.token,
                    directory,
                    self.keepalive,
                    broker_metadata=self._broker.metadata_path,
                    own_session=self.own_session,
                )
            self.port = self._in_spawner(self._gateway.start)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop the gateway and the broker; leaves no process or thread behind. Idempotent.

        Each child gets a short grace after SIGTERM (the gateway about 1.5 s, the broker 0.3 s)
        and is killed after it, so this returns within about 2 s whatever state they are in.

        Args:
            keep_data: leave a temporary data directory (and its logs) in place.
        """
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
        if self._broker is not None:
            self._broker.stop()
            self._broker = None
        if self._spawner is not None:
            self._spawner.close()
            self._spawner = None
        if self._temp_dir is not None and not keep_data:
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


class _Interrupted(BaseException):
    """SIGINT or SIGTERM while local Pulsar was still starting."""


def run_local(
    port: int = 8080,
    broker_port: int = 6650,
    data_dir: str | os.PathLike[str] | None = None,
    token: str | None = None,
    *,
    poll_seconds: float = 0.2,
) -> None:
    """Run local Pulsar in the foreground until SIGINT or SIGTERM (what ``rxstargate local`` does).

    Prints the URLs, the data directory and the log files once it runs. Stops within about 2 s
    of a signal, even while starting or with a stalled broker.

    Raises:
        LocalPulsarError: when it does not start, or when the broker or the gateway ends while
            it runs (the message says which and how; a temporary data directory is then kept,
            with its logs, and named in the message).
    """
    stopping = threading.Event()
    starting = [True]

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()
        if starting[0]:
            starting[0] = False
            raise _Interrupted

    previous = {
        signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    local = LocalPulsar(port=port, broker_port=broker_port, data_dir=data_dir, token=token)
    failure: str | None = None
    try:
        local.start()
        starting[0] = False
        _print_banner(local)
        while not stopping.wait(poll_seconds):
            failure = local.failure()
            if failure is not None:
                break
    except _Interrupted:
        pass
    finally:
        starting[0] = False
        directory = local.directory
        local.stop(keep_data=failure is not None)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if failure is not None:
        raise LocalPulsarError(f"{failure}; logs in {directory}")


def _print_banner(local: LocalPulsar) -> None:
    directory = local.directory or ""
    kind = "temporary, removed when stopped" if local.is_temporary else "kept across restarts"
    pids = f"broker pid {local.broker_pid}"
    if local.gateway_pid is not None:
        pids += f", gateway pid {local.gateway_pid}"
    lines = [
        f"Pulsar WebSocket API: {local.ws_url}",
        f"Pulsar broker:        {local.broker_url}",
        f"Data directory:       {directory} ({kind})",
        f"Logs:                 {', '.join(os.path.join(directory, n) for n in LOG_FILES)}",
        f"Processes:            {pids}",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)


def _describe_status(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"status {status}"
