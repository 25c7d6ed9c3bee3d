"""The pulsar-lite broker as a child process bound to 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import time

from rxstargate.local._errors import LocalPulsarError, log_tail
from rxstargate.local._process import accepts_connections, die_with_parent, free_port, terminate

# pulsar-lite marks a broker connection not writable while its write buffer holds the high-water
# mark or more (64 KiB by default); a dispatcher that finds it so stops, and is not woken when the
# buffer drains, only by the next flow command, published message or consumer joining or leaving.
# The connection puts up to 128 messages at a time into that buffer, so a batch of messages of
# 256 KiB or more crossed the mark every time, and smaller ones now and then (a consumer with a
# large receiver queue, which sends its next flow command only after half of it, then waited for
# good). Above any batch (128 messages of pulsar-lite's largest, 5 MiB) the connection stays
# writable. The mark is also the size at which the buffer is flushed before the batch ends, so the
# buffer now holds up to one batch: messages the broker already holds queued for the connection.
WRITE_BUFFER_HIGH_WATER_MARK = 1024 * 1024 * 1024

# A type error anywhere in this file makes pulsar-lite silently ignore all of it.
_CONFIG = (
    'log_level = "warn"\n'
    f"pulsar_channel_write_buffer_high_water_mark_bytes = {WRITE_BUFFER_HIGH_WATER_MARK}\n"
    "\n[metrics]\nenabled = false\n"
)

# pulsar-lite exits at once on SIGTERM; a stopped or stuck one is killed after this.
STOP_GRACE_SECONDS = 0.3


class Broker:
    """One pulsar-lite process; ``start()`` returns once it accepts connections."""

    def __init__(self, data_dir: str, port: int = 0, *, own_session: bool = False) -> None:
        self.data_dir = data_dir
        self.port = port
        self.own_session = own_session
        self.log_path = os.path.join(data_dir, "broker.log")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def metadata_path(self) -> str:
        """pulsar-lite's metadata file (its namespaces, topics and subscriptions, as JSON)."""
        return os.path.join(self.data_dir, "broker-data.metadata.json")

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._process.pid if self._process else None

    def exit_status(self) -> int | None:
        """The exit status if the process has ended (it should not before ``stop()``)."""
        return self._process.poll() if self._process else None

    def start(self, timeout: float = 20.0) -> None:
        """Start the broker and wait until it accepts connections.

        Raises:
            LocalPulsarError: when it exits or stays deaf for ``timeout`` seconds.
        """
        from pulsar_lite.binary_finder import find_pulsar_lite_binary

        binary = str(find_pulsar_lite_binary())
        config_path = os.path.join(self.data_dir, "pulsar-lite.toml")
        with open(config_path, "w", encoding="utf-8") as config:
            config.write(_CONFIG)
        if not self.port:
            self.port = free_port()
        elif accepts_connections(self.port):
            raise LocalPulsarError(f"port 127.0.0.1:{self.port} is already in use")
        db_path = os.path.join(self.data_dir, "broker-data")  # see metadata_path
        command = [binary, "--config", config_path, "--addr", f"127.0.0.1:{self.port}"]
        command += ["--db-path", db_path]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.data_dir,
                preexec_fn=die_with_parent(),
                start_new_session=self.own_session,
                close_fds=True,
            )
        deadline = time.monotonic() + timeout
        while not accepts_connections(self.port):
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                raise LocalPulsarError(
                    f"pulsar-lite exited with status {code} on port {self.port}; "
                    f"log tail:\n{log_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise LocalPulsarError(
                    f"pulsar-lite did not accept connections on 127.0.0.1:{self.port} "
                    f"within {timeout:.0f} s; log tail:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the broker and reap it; does nothing if it is not running."""
        if self._process is not None:
            terminate(self._process, timeout=STOP_GRACE_SECONDS)
            self._process = None
