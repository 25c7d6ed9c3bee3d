"""Backpressure: a slow pipeline (2 ms per message) on a large backlog stays bounded.

Run: python benchmarks/client_slow_pipeline.py [messages] [max_in_flight]
The consumer hands messages to another thread (observe_on) whose work takes 2 ms each,
then acks them. Reports the most messages ever delivered and not yet settled (must never
exceed max_in_flight) and the growth of the client's resident memory (goal < 20 MB).
"""

from __future__ import annotations

import os
import sys
import threading
import time

import reactivex as rx
from _client_util import fresh_topic, local_pulsar
from reactivex import operators as ops
from reactivex.scheduler import NewThreadScheduler

import rxstargate as rs


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    window = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    with local_pulsar() as url, rs.Client(url) as client:
        topic = client.topic(fresh_topic("slow"))
        producer = topic.producer()
        done = threading.Event()
        producer.acks.subscribe(on_completed=done.set)
        rx.from_iterable([b"z" * 100] * messages).subscribe(producer)
        done.wait()
        lock = threading.Lock()
        state = {"delivered": 0, "settled": 0, "peak": 0, "rss_peak": 0.0}
        finished = threading.Event()

        def delivered(_: rs.Message[object]) -> None:
            with lock:
                state["delivered"] += 1
                state["peak"] = max(state["peak"], state["delivered"] - state["settled"])

        def work(message: rs.Message[object]) -> rs.Message[object]:
            time.sleep(0.002)
            return message

        def settle(message: rs.Message[object]) -> None:
            message.ack()
            with lock:
                state["settled"] += 1
                if state["settled"] % 1000 == 0:
                    state["rss_peak"] = max(state["rss_peak"], rss_mb())
                if state["settled"] == messages:
                    finished.set()

        rss_before = rss_mb()
        start = time.perf_counter()
        subscription = (
            topic.observe(
                "slow",
                subscription_type="Shared",
                max_in_flight=window,
                subscription_initial_position="Earliest",
            )
            .pipe(ops.do_action(delivered), ops.observe_on(NewThreadScheduler()), ops.map(work))
            .subscribe(settle)
        )
        finished.wait()
        elapsed = time.perf_counter() - start
        subscription.dispose()
    print(f"\n== slow pipeline: {messages} messages, 2 ms each, max_in_flight={window}")
    print(f"   took {elapsed:.1f} s ({messages / elapsed:.0f} msg/s; 2 ms/message caps it at 500)")
    print(f"   peak delivered-but-unsettled: {state['peak']} (bound {window})")
    print(f"   RSS growth: {state['rss_peak'] - rss_before:.1f} MB (goal < 20 MB)")


if __name__ == "__main__":
    main()
