"""An at-least-once bridge, process() + publish(), vs a plain producer sending the same payloads.

Run: python benchmarks/operators_bridge.py [messages]
The bridge consumes a backlog through a fresh Shared subscription (window 1,000), passes each
payload through process(), publishes it to another topic (a producer with 1,000 in flight) and
acks each input once its output is stored; it is timed until the last input is acked. The
plain producer is the Producer as an Rx Observer sending the same payloads, timed to its last
ack. The bridge also consumes and acks, so it does more work: goal >= 0.8x the producer.

A plain consumer (observe + acknowledger over the same backlog) is timed too: consuming then
producing the same messages, each at its own best rate, takes 1/consume + 1/produce seconds per
message, the rate a bridge reaches if its halves never overlap. The second ratio compares the
bridge with that rate: above 1.0, pipelining overlaps the halves. Each run also prints the CPU
per message of this process (client), and of local Pulsar's gateway and broker (Linux).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import reactivex as rx
from _client_util import Run, fresh_topic, local_pulsar, measure, measure_stage

import rxstargate as rs
import rxstargate.operators as rso

WINDOW = 1000
TIMEOUT = 300  # seconds a run may take before the benchmark gives up


def send_all(producer: rs.Producer[Any], payloads: list[bytes]) -> None:
    done = threading.Event()
    failed: list[Any] = []
    producer.acks.subscribe(lambda a: a.ok or failed.append(a), on_completed=done.set)
    rx.from_iterable(payloads).subscribe(producer)
    if not done.wait(TIMEOUT) or failed:
        raise RuntimeError(f"not every payload was stored: {failed[:3] or 'timed out'}")


def plain(client: rs.Client, payloads: list[bytes]) -> Run:
    producer = client.topic(fresh_topic("bench-plain")).producer(max_in_flight=WINDOW)
    producer.send(b"warm-up")  # connect outside the timing
    return measure("plain producer", len(payloads), lambda: send_all(producer, payloads))


def bridge(client: rs.Client, source: rs.Topic, messages: int, subscription: str) -> Run:
    target = client.topic(fresh_topic("bench-bridge-out")).producer(max_in_flight=WINDOW)
    target.send(b"warm-up")  # connect outside the timing, as the plain producer does

    def stage(stream: Any) -> Any:
        return stream.pipe(rso.process(lambda m: m.payload), rso.publish(target))

    run = measure_stage(
        "bridge process+publish", source, messages, stage, subscription, WINDOW, TIMEOUT
    )
    target.close()
    return run


def consume(source: rs.Topic, messages: int, subscription: str) -> Run:
    return measure_stage(
        "plain consumer", source, messages, lambda s: s, subscription, WINDOW, TIMEOUT
    )


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    payloads = [b"b" * 100] * messages
    with local_pulsar() as url, rs.Client(url) as client:
        source = client.topic(fresh_topic("bench-bridge-in"))
        # each bridge's new subscription starts at the earliest message: the whole backlog
        send_all(source.producer(max_in_flight=WINDOW), payloads)
        plain(client, payloads[:2000])  # warm the gateway and broker up
        runs_plain, runs_consume, runs_bridge = [], [], []
        for index in range(3):
            runs_plain.append(plain(client, payloads))
            runs_consume.append(consume(source, messages, f"consume-{index}"))
            runs_bridge.append(bridge(client, source, messages, f"bridge-{index}"))
    best_plain = max(runs_plain, key=lambda r: r.rate)
    best_consume = max(runs_consume, key=lambda r: r.rate)
    best_bridge = max(runs_bridge, key=lambda r: r.rate)
    print(f"\n== bridge one topic to another ({messages} messages, best of 3 runs each)")
    for run in [*runs_plain, *runs_consume, *runs_bridge]:
        where = "  ".join(
            f"{p} {run.cpu_us_of(p):5.1f}"
            for p in ("client", "gateway", "broker")
            if p in run.processes
        )
        print(f"   {run.name:<24} {run.rate:>8.0f} msg/s   us CPU/msg: {where}")
    ratio = best_bridge.rate / best_plain.rate
    print(f"   throughput ratio bridge/plain producer: {ratio:.2f}x (goal >= 0.8)")
    halves = 1 / (1 / best_plain.rate + 1 / best_consume.rate)
    print(
        f"   bridge/(consume, then produce): {best_bridge.rate / halves:.2f}x"
        f" ({halves:.0f} msg/s if the halves did not overlap)"
    )


if __name__ == "__main__":
    main()
