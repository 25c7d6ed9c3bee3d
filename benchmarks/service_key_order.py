"""rxstargate run --processes 2 on a Key_Shared subscription: what per-key order holds.

Run: python benchmarks/service_key_order.py [messages] [keys] [runs] [scenario,...]
Each run bridges a keyed topic to another with two worker processes (`rxstargate run
--processes 2`, concurrency 4, key_ordered, a 1 ms handler) and reads the output topic back.
For every key it checks that the outputs, taken at each input's first output, come in the
input's order, and counts the inputs bridged more than once. Three scenarios:

- steady: both workers are connected before the messages are produced;
- backlog: the messages are produced first, then the workers start (they join one after the
  other while the first already holds messages);
- leave: as steady, but with two `rxstargate run` processes of their own (no supervisor); one
  is killed with SIGKILL a quarter of the way through, and nothing takes its place;
- drain: as leave, but the process is stopped with SIGTERM (it drains, then leaves);
- kill: steady, then one worker is killed with SIGKILL a quarter of the way through (its
  messages go to the other; the supervisor restarts it and it joins again).

Prints, per scenario, the inputs bridged, keys out of order, outputs out of order and inputs
bridged twice or more, over all runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import reactivex as rx
from _client_util import fresh_topic, local_pulsar
from reactivex import operators as ops

import rxstargate as rs

TIMEOUT = 120.0  # seconds a run may take before the benchmark gives up
HERE = Path(__file__).resolve().parent
SCENARIOS = ("steady", "backlog", "drain", "leave", "kill")


def bridge(message: rs.Message[Any]) -> bytes:
    """The handler the workers run: 1 ms of work, then the input as it is."""
    time.sleep(0.001)
    return message.payload


class Service:
    """`rxstargate run APP --processes 2` with JSON logs, read on a thread."""

    def __init__(self, app: Path, *options: str) -> None:
        command = "import sys; from rxstargate.cli import main; sys.exit(main(sys.argv[1:]))"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))
        self.process = subprocess.Popen(
            [sys.executable, "-c", command, "run", str(app), *options,
             "--metrics-port", "0", "--log-format", "json"],
            env=env, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.records: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                self.records.append(json.loads(line))
            except ValueError:
                print(line, end="", file=sys.stderr)

    def event(self, name: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            for record in list(self.records):
                if record.get("event") == name:
                    return record
            time.sleep(0.02)
        raise RuntimeError(f"no {name} event")

    def ready(self) -> bool:
        port = self.event("listening")["port"]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(TIMEOUT)
        self._reader.join()


def write_app(folder: Path, url: str, source: str, target: str) -> Path:
    app = folder / "app.toml"
    app.write_text(
        f'url = "{url}"\n[producers.out]\ntopic = "{target}"\n'
        f'[consumers.bridge]\ntopic = "{source}"\nsubscription = "bridge"\n'
        'subscription_type = "Key_Shared"\nhandler = "service_key_order:bridge"\n'
        'concurrency = 4\nkey_ordered = true\npublish_to = "out"\nstart = "earliest"\n'
    )
    return app


def produce(client: rs.Client, topic: str, messages: int, keys: int) -> None:
    outgoing = [
        rs.OutgoingMessage(f"{i % keys}:{i}".encode(), key=str(i % keys)) for i in range(messages)
    ]
    producer = client.topic(topic).producer()
    rx.from_iterable(outgoing).subscribe(producer)
    producer.flush(TIMEOUT)


def read_outputs(client: rs.Client, topic: str, messages: int) -> list[bytes]:
    seen: set[bytes] = set()

    def enough(message: rs.Message[Any]) -> bool:
        seen.add(message.payload)
        return len(seen) < messages

    outputs: list[rs.Message[Any]] = (
        client.topic(topic).observe(start="earliest")
        .pipe(ops.take_while(enough, inclusive=True), ops.to_list(), ops.timeout(TIMEOUT))
        .run()
    )  # fmt: skip
    return [m.payload for m in outputs]


def judge(outputs: list[bytes]) -> tuple[int, int, int]:
    """(keys out of order, outputs out of order, inputs bridged more than once)."""
    last: dict[str, int] = {}
    first: set[bytes] = set()
    late: set[str] = set()
    behind = twice = 0
    for payload in outputs:
        if payload in first:
            twice += 1
            continue
        first.add(payload)
        key, seq = payload.decode().split(":")
        if int(seq) < last.get(key, -1):
            behind += 1
            late.add(key)
        last[key] = max(int(seq), last.get(key, -1))
    return len(late), behind, twice


def run(url: str, scenario: str, messages: int, keys: int) -> tuple[int, int, int, int]:
    source, target = fresh_topic("order-in"), fresh_topic("order-out")
    with tempfile.TemporaryDirectory() as folder, rs.Client(url) as client:
        app = write_app(Path(folder), url, source, target)
        if scenario == "backlog":
            produce(client, source, messages, keys)
        if scenario in ("leave", "drain"):
            services = [Service(app), Service(app)]
        else:
            services = [Service(app, "--processes", "2")]
        try:
            if scenario != "backlog":
                while not all(service.ready() for service in services):
                    time.sleep(0.05)
                producer = threading.Thread(target=produce, args=(client, source, messages, keys))
                producer.start()
                if scenario in ("kill", "leave", "drain"):
                    wait_for_outputs(client, target, messages // 4)
                    victim = services[0]
                    pid = victim.process.pid
                    if scenario == "kill":
                        pid = victim.event("worker-started")["worker_pid"]
                    os.kill(pid, signal.SIGTERM if scenario == "drain" else signal.SIGKILL)
                producer.join()
            outputs = read_outputs(client, target, messages)
        finally:
            for service in services:
                service.stop()
    return (len(set(outputs)), *judge(outputs))


def wait_for_outputs(client: rs.Client, topic: str, count: int) -> None:
    client.topic(topic).observe(start="earliest").pipe(ops.take(count), ops.timeout(TIMEOUT)).run()


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    keys = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    chosen = sys.argv[4].split(",") if len(sys.argv) > 4 else SCENARIOS
    print(f"{messages} messages over {keys} keys, {runs} run(s) per scenario, 2 processes")
    print(f"{'scenario':<10}{'bridged':>10}{'keys late':>11}{'outputs late':>14}{'twice':>8}")
    with local_pulsar() as url:
        for scenario in chosen:
            totals = [0, 0, 0, 0]
            for _ in range(runs):
                for i, value in enumerate(run(url, scenario, messages, keys)):
                    totals[i] += value
            bridged, late_keys, late, twice = totals
            print(f"{scenario:<10}{bridged:>10}{late_keys:>11}{late:>14}{twice:>8}")


if __name__ == "__main__":
    main()
