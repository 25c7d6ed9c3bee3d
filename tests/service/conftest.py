"""Helpers of the service tests: ``rxstargate run`` in a child process, its JSON log lines read
as they come, and its metrics port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # seconds any wait of these tests may take at most (they take a few)
_MAIN = "import sys; from rxstargate.cli import main; sys.exit(main(sys.argv[1:]))"

Record = dict[str, Any]


def bridge_app(path: Path, url: str, source: str, target: str, **consumer: Any) -> Path:
    """Write an app that bridges ``source`` to ``target`` with tests/service/bridge_app.py."""
    settings = {
        "topic": source,
        "subscription": "bridge",
        "subscription_type": "Key_Shared",
        "handler": "tests.service.bridge_app:bridge",
        "concurrency": 4,
        "key_ordered": True,
        "publish_to": "out",
        "start": "earliest",
        **consumer,
    }
    lines = [f"url = {json.dumps(url)}", "[producers.out]", f"topic = {json.dumps(target)}"]
    lines += ["[consumers.bridge]", *(f"{k} = {json.dumps(v)}" for k, v in settings.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


class Service:
    """``rxstargate run ARGS`` in a child process with ``--log-format json``.

    Its stderr lines are parsed as they come (lines that are not JSON are kept as text, for
    the failure messages); :meth:`wait_for` waits for a record, :meth:`get` asks the metrics
    port.
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]))
        environment.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-c", _MAIN, "run", *args, "--log-format", "json"],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.records: list[Record] = []
        self.text: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="service-log")
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                try:
                    self.records.append(json.loads(line))
                except ValueError:
                    self.text.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def log(self) -> str:
        """Everything it logged, for assertion messages."""
        return "\n".join([*map(json.dumps, self.records), *self.text])

    def wait_for(self, predicate: Callable[[Record], bool], what: str) -> Record:
        """The first record that matches (waiting for it, at most WAIT seconds)."""
        deadline = time.monotonic() + WAIT
        with self._changed:
            while True:
                for record in self.records:
                    if predicate(record):
                        return record
                if not self._reader.is_alive() or time.monotonic() > deadline:
                    raise AssertionError(f"no {what} in the log:\n{self.log()}")
                self._changed.wait(deadline - time.monotonic())

    def event(self, name: str, **fields: Any) -> Record:
        """The first record of event ``name`` with these fields."""
        return self.wait_for(
            lambda r: r.get("event") == name and all(r.get(k) == v for k, v in fields.items()),
            f"{name} event {fields or ''}",
        )

    @property
    def port(self) -> int:
        """The metrics port (the run was given ``--metrics-port 0``)."""
        return int(self.event("listening")["port"])

    def get(self, path: str) -> tuple[int, str]:
        """GET ``path`` on the metrics port: (status, body)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def wait_ready(self) -> None:
        """Until ``/readyz`` answers 200."""
        until(lambda: self.get("/readyz")[0] == 200, "/readyz to answer 200")

    def signal(self, number: int = signal.SIGTERM) -> None:
        self.process.send_signal(number)

    def wait(self) -> int:
        """Its exit status (waiting at most WAIT seconds)."""
        status = self.process.wait(WAIT)
        self._reader.join(WAIT)
        return status

    def close(self) -> None:
        """Kill it if it still runs; stop reading."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(WAIT)
        self._reader.join(WAIT)
        if self.process.stderr is not None:
            self.process.stderr.close()


def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``condition`` until it holds, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def service() -> Iterator[Callable[..., Service]]:
    """Start ``rxstargate run`` children; each is killed (if still running) after the test."""
    started: list[Service] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Service:
        child = Service(*args, env=env)
        started.append(child)
        return child

    yield start
    for child in started:
        child.close()
