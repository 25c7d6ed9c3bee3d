"""Shared helpers of the client benchmarks: a local Pulsar, timing, and a results table."""

from __future__ import annotations

import base64
import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import websocket

from rxstargate.local import LocalPulsar

#: The processes of the local Pulsar started by local_pulsar(), for process_cpu().
SERVER_PIDS: dict[str, int] = {}


@contextmanager
def local_pulsar_urls() -> Iterator[tuple[str, str]]:
    """The WebSocket and broker URLs of one Pulsar: RXSTARGATE_WS_URL and RXSTARGATE_BROKER_URL,
    or local Pulsar with the gateway and the broker in their own processes."""
    url, broker = os.environ.get("RXSTARGATE_WS_URL"), os.environ.get("RXSTARGATE_BROKER_URL")
    if url and broker:
        yield url, broker
        return
    with LocalPulsar() as local:
        for name, pid in (("gateway", local.gateway_pid), ("broker", local.broker_pid)):
            if pid is not None:
                SERVER_PIDS[name] = pid
        try:
            yield local.ws_url, local.broker_url
        finally:
            SERVER_PIDS.clear()


@contextmanager
def local_pulsar() -> Iterator[str]:
    """A Pulsar WebSocket URL: RXSTARGATE_WS_URL, or local Pulsar with the gateway in a child."""
    url = os.environ.get("RXSTARGATE_WS_URL")
    if url:
        yield url
        return
    with local_pulsar_urls() as (ws_url, _):
        yield ws_url


def pid_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) a process has used so far, all threads (Linux /proc).

    Raises:
        OSError: when the process is gone.
    """
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu() -> dict[str, float]:
    """CPU seconds so far of this process ("client") and of local Pulsar's (Linux /proc)."""
    result = {"client": time.process_time()}
    for name, pid in SERVER_PIDS.items():
        try:
            result[name] = pid_cpu(pid)
        except OSError:
            continue
    return result


def fresh_topic(prefix: str) -> str:
    return f"persistent://public/default/{prefix}-{uuid.uuid4().hex[:8]}"


def ws_path(kind: str, topic: str, suffix: str = "") -> str:
    rest = topic.removeprefix("persistent://")
    return f"/ws/v2/{kind}/persistent/{rest}" + (f"/{suffix}" if suffix else "")


def plain_socket(url: str) -> websocket.WebSocket:
    ws = websocket.create_connection(url, enable_multithread=True, skip_utf8_validation=True)
    return ws


def send_frame(payload: bytes, context: str) -> str:
    return json.dumps({"payload": base64.b64encode(payload).decode(), "context": context})


@dataclass
class Run:
    name: str
    messages: int
    wall: float
    cpu: float
    processes: dict[str, float] = field(default_factory=dict)  # CPU seconds by process
    system: float = 0.0  # of ``cpu``, seconds spent in the kernel (system calls, wake-ups)

    def cpu_us_of(self, process: str) -> float:
        """CPU per message of one process ("client", "gateway", "broker"), in µs."""
        return self.processes.get(process, 0.0) / self.messages * 1e6

    @property
    def rate(self) -> float:
        return self.messages / self.wall

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.messages * 1e6


def measure(name: str, messages: int, work: Callable[[], None]) -> Run:
    before, kernel0, wall0 = process_cpu(), os.times().system, time.perf_counter()
    work()
    wall, after, kernel = time.perf_counter() - wall0, process_cpu(), os.times().system - kernel0
    spent = {key: after[key] - before.get(key, after[key]) for key in after}
    return Run(name, messages, wall, spent["client"], spent, kernel)


def plain_produce(
    url: str, topic: str, messages: int, payload: bytes, window: int, timeout: float = 300.0
) -> Run:
    """The plain websocket-client producer: a sender and an ack-reader thread, at most
    ``window`` messages unacknowledged; a run that takes longer than ``timeout`` fails."""
    ws = plain_socket(url + ws_path("producer", topic))
    ws.settimeout(timeout)
    slots = threading.Semaphore(window)
    failed: list[object] = []

    def read_acks() -> None:
        for _ in range(messages):
            ack = json.loads(ws.recv())
            if ack["result"] != "ok":
                failed.append(ack)
            slots.release()

    def work() -> None:
        reader = threading.Thread(target=read_acks)
        reader.start()
        for index in range(messages):
            if not slots.acquire(timeout=timeout):
                raise RuntimeError("plain producer: no ack within the timeout")
            ws.send(send_frame(payload, str(index)))
        reader.join(timeout)
        if reader.is_alive():
            raise RuntimeError("plain producer: acks missing after the timeout")

    run = measure("plain", messages, work)
    ws.close()
    if failed:
        raise RuntimeError(f"plain producer: {len(failed)} failed acks, first {failed[0]}")
    return run


def report(title: str, plain: list[Run], rx: list[Run]) -> None:
    """Print best-of runs and the rxstargate/plain ratios."""
    best_plain = max(plain, key=lambda r: r.rate)
    best_rx = max(rx, key=lambda r: r.rate)
    cpu_plain = min(r.cpu_us for r in plain)
    cpu_rx = min(r.cpu_us for r in rx)
    print(f"\n== {title} ({best_rx.messages} messages, best of {len(rx)} runs each)")
    for run in [*plain, *rx]:
        print(f"   {run.name:<22} {run.rate:>9.0f} msg/s   {run.cpu_us:>7.1f} us CPU/msg")
    print(
        f"   throughput ratio rxstargate/plain: {best_rx.rate / best_plain.rate:.2f}x (goal >= 1.0)"
    )
    print(f"   CPU/msg ratio plain/rxstargate:    {cpu_plain / cpu_rx:.2f}x (goal >= 1.0)")


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure_stage(
    name: str,
    topic: Any,
    messages: int,
    stage: Callable[[Any], Any],
    subscription: str,
    window: int = 1000,
    timeout: float = 300.0,
) -> Run:
    """Time ``messages`` of a backlog through ``stage`` into the acknowledger.

    A fresh Shared subscription reads from the earliest message with ``max_in_flight=window``;
    the run fails if the backlog is not settled within ``timeout`` seconds.
    """
    import threading

    from reactivex import operators as ops

    import rxstargate as rs

    done = threading.Event()
    errors: list[Exception] = []

    def failed(error: Exception) -> None:
        errors.append(error)
        done.set()

    sink = rs.acknowledger(on_error=failed, on_completed=done.set)
    source = topic.observe(
        subscription, subscription_type="Shared", start="earliest", max_in_flight=window
    )
    holder: list[Any] = []

    def work() -> None:
        holder.append(source.pipe(stage, ops.take(messages)).subscribe(sink))
        if not done.wait(timeout) or errors:
            raise RuntimeError(f"the backlog was not settled: {errors or 'timed out'}")

    result = measure(name, messages, work)
    holder[0].dispose()
    assert sink.acked == messages and sink.failed == 0, (sink.acked, sink.failed)
    return result
