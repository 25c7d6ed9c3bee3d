"""process(concurrency=N): an I/O-bound handler at concurrency 1 vs 8, key-ordered and not.

Run: python benchmarks/operators_concurrency.py [messages] [keys]
Every run reads the same keyed backlog through a fresh Shared subscription with a window of
1,000, handles each message with a 5 ms blocking wait (standing in for a call to another
service) and acks it once handled. Reports throughput at each setting and the ratio
concurrency 8 / concurrency 1 (goal >= 6x; 8x is the ceiling) with key_ordered on and off.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import reactivex as rx
from _client_util import Run, fresh_topic, local_pulsar, measure_stage

import rxstargate as rs
import rxstargate.operators as rso

WINDOW = 1000
TIMEOUT = 300  # seconds a run may take before the benchmark gives up
WAIT = 0.005
LOW, HIGH = 1, 8


def fill(topic: rs.Topic, messages: int, keys: int) -> None:
    producer = topic.producer(max_in_flight=WINDOW)
    done = threading.Event()
    failed: list[Any] = []
    producer.acks.subscribe(lambda a: a.ok or failed.append(a), on_completed=done.set)
    outgoing = [rs.OutgoingMessage(b"k" * 100, key=f"key-{i % keys}") for i in range(messages)]
    rx.from_iterable(outgoing).subscribe(producer)
    if not done.wait(TIMEOUT) or failed:
        raise RuntimeError(f"the backlog was not stored: {failed[:3] or 'timed out'}")


def handler(message: rs.Message[Any]) -> None:
    time.sleep(WAIT)


def run(
    topic: rs.Topic, messages: int, concurrency: int, key_ordered: bool, subscription: str
) -> Run:
    order = "key-ordered" if key_ordered else "unordered"
    stage = rso.process(handler, concurrency=concurrency, key_ordered=key_ordered)
    name = f"{order} concurrency={concurrency}"
    return measure_stage(name, topic, messages, stage, subscription, WINDOW, TIMEOUT)


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    keys = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    with local_pulsar() as url, rs.Client(url) as client:
        topic = client.topic(fresh_topic("bench-concurrency"))
        # each run's new subscription starts at the earliest message: the whole backlog
        fill(topic, messages, keys)
        runs: dict[tuple[bool, int], list[Run]] = {}
        index = 0
        for _ in range(3):
            for key_ordered in (False, True):
                for concurrency in (LOW, HIGH):
                    index += 1
                    runs.setdefault((key_ordered, concurrency), []).append(
                        run(topic, messages, concurrency, key_ordered, f"conc-{index}")
                    )
    ceiling = 1 / WAIT
    print(
        f"\n== process(): {WAIT * 1000:.0f} ms blocking handler, {messages} messages,"
        f" {keys} keys (best of 3 runs each)"
    )
    print(f"   ceiling: {ceiling:.0f} msg/s per unit of concurrency")
    best = {setting: max(r.rate for r in found) for setting, found in runs.items()}
    for (key_ordered, concurrency), rate in best.items():
        order = "key-ordered" if key_ordered else "unordered"
        label = f"{order} concurrency={concurrency}"
        print(f"   {label:<28} {rate:>7.0f} msg/s  ({rate / ceiling:.2f}x one handler)")
    for key_ordered in (False, True):
        order = "key-ordered" if key_ordered else "unordered"
        ratio = best[(key_ordered, HIGH)] / best[(key_ordered, LOW)]
        print(f"   ratio concurrency {HIGH}/{LOW}, {order + ':':<12} {ratio:.2f}x (goal >= 6)")


if __name__ == "__main__":
    main()
