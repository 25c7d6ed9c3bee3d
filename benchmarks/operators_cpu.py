"""Client CPU per message: process(fn) at concurrency 1 vs a plain ops.map(fn) pipeline.

Run: python benchmarks/operators_cpu.py [messages]
Both read the same backlog through a fresh Shared subscription (window 1,000), apply a trivial
fn and ack every message. CPU is this process's CPU time (every thread; local Pulsar runs in
child processes, so it is not counted). Goal: process/map CPU per message <= 1.25x. A third
variant gives each call a timeout (one timer scheduled and cancelled per message).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import reactivex as rx
from _client_util import Run, fresh_topic, local_pulsar, measure_stage
from reactivex import Observable
from reactivex import operators as ops

import rxstargate as rs
import rxstargate.operators as rso

WINDOW = 1000
TIMEOUT = 300  # seconds a run may take before the benchmark gives up


def fill(topic: rs.Topic, messages: int) -> None:
    producer = topic.producer(max_in_flight=WINDOW)
    done = threading.Event()
    failed: list[Any] = []
    producer.acks.subscribe(lambda a: a.ok or failed.append(a), on_completed=done.set)
    rx.from_iterable([b"c" * 100] * messages).subscribe(producer)
    if not done.wait(TIMEOUT) or failed:
        raise RuntimeError(f"the backlog was not stored: {failed[:3] or 'timed out'}")


def fn(message: rs.Message[Any]) -> rs.Message[Any]:
    return message  # trivial work; what map emits is the message the acknowledger acks


def run(
    name: str,
    topic: rs.Topic,
    messages: int,
    stage: Callable[[Observable[Any]], Observable[Any]],
    subscription: str,
) -> Run:
    return measure_stage(name, topic, messages, stage, subscription, WINDOW, TIMEOUT)


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with local_pulsar() as url, rs.Client(url) as client:
        topic = client.topic(fresh_topic("bench-operators-cpu"))
        # each run's new subscription starts at the earliest message: the whole backlog
        fill(topic, messages)
        run("warm-up", topic, messages, ops.map(fn), "warm-up")
        runs_map, runs_process, runs_timeout = [], [], []
        for index in range(3):
            runs_map.append(run("ops.map(fn)", topic, messages, ops.map(fn), f"map-{index}"))
            runs_process.append(
                run("rso.process(fn)", topic, messages, rso.process(fn), f"process-{index}")
            )
            runs_timeout.append(
                run(
                    "process(timeout=30)",
                    topic,
                    messages,
                    rso.process(fn, timeout=30),
                    f"process-timeout-{index}",
                )
            )
    print(f"\n== CPU per message, trivial fn ({messages} messages, best of 3 runs each)")
    for result in [*runs_map, *runs_process, *runs_timeout]:
        print(f"   {result.name:<18} {result.rate:>8.0f} msg/s   {result.cpu_us:>7.1f} us CPU/msg")
    cpu_map = min(r.cpu_us for r in runs_map)
    cpu_process = min(r.cpu_us for r in runs_process)
    print(f"   CPU/msg ratio process/map: {cpu_process / cpu_map:.2f}x (goal <= 1.25)")
    cpu_timeout = min(r.cpu_us for r in runs_timeout)
    print(f"   CPU/msg ratio process(timeout=30)/map: {cpu_timeout / cpu_map:.2f}x (a timer each)")


if __name__ == "__main__":
    main()
