"""Client CPU of an at-least-once bridge vs consuming plus producing the same messages.

Run: python benchmarks/operators_bridge.py [messages] [pairs]

Each pair, in one run against the same local Pulsar, measures this process's CPU time (the
client's only: local Pulsar runs in processes of its own) for ``messages`` (default 10,000)
payloads of 100 bytes, four ways, one after the other:

- consume: a fresh Shared subscription reads the backlog (``max_in_flight=1000``) into the
  acknowledger;
- produce: a producer (``max_in_flight=1000``) as an Rx Observer sends the same payloads, to
  its last ack;
- bridge: a fresh subscription reads the backlog through ``process()`` and ``publish()`` to
  another topic (a producer with 1,000 in flight) into the acknowledger: each input is acked
  once its output is stored.

- at once: the consume and the produce above at the same time, uncoupled.

The bridge does the work of the first two, so the ratio reported per pair is
``bridge CPU / (consume CPU + produce CPU)``, per message (goal <= 1.1x); the order of the
runs rotates from pair to pair. The bridge runs at the pace of local Pulsar's gateway, which
serves both its halves, and so do the halves run at once: ``bridge / at once`` is what
coupling them through process() and publish() costs beyond that. Wall-clock rates and local
Pulsar's CPU per message are printed too (Linux).
"""

from __future__ import annotations

import statistics
import sys
import threading
from typing import Any

import reactivex as rx
from _client_util import Run, fresh_topic, local_pulsar, measure, measure_stage
from reactivex import operators as ops

import rxstargate as rs
import rxstargate.operators as rso

WINDOW = 1000
TIMEOUT = 300  # seconds a run may take before the benchmark gives up
GOAL = 1.1


def send_all(producer: rs.Producer[Any], payloads: list[bytes]) -> None:
    done = threading.Event()
    failed: list[Any] = []
    producer.acks.subscribe(lambda a: a.ok or failed.append(a), on_completed=done.set)
    rx.from_iterable(payloads).subscribe(producer)
    if not done.wait(TIMEOUT) or failed:
        raise RuntimeError(f"not every payload was stored: {failed[:3] or 'timed out'}")


def produce(client: rs.Client, payloads: list[bytes]) -> Run:
    producer = client.topic(fresh_topic("bench-plain")).producer(max_in_flight=WINDOW)
    producer.send(b"warm-up")  # connect outside the timing
    return measure("produce", len(payloads), lambda: send_all(producer, payloads))


def bridge(client: rs.Client, source: rs.Topic, messages: int, subscription: str) -> Run:
    target = client.topic(fresh_topic("bench-bridge-out")).producer(max_in_flight=WINDOW)
    target.send(b"warm-up")  # connect outside the timing, as the plain producer does

    def stage(stream: Any) -> Any:
        return stream.pipe(rso.process(lambda m: m.payload), rso.publish(target))

    run = measure_stage("bridge", source, messages, stage, subscription, WINDOW, TIMEOUT)
    target.close()
    return run


def at_once(client: rs.Client, source: rs.Topic, payloads: list[bytes], subscription: str) -> Run:
    """Consuming the backlog and producing the same payloads at the same time, uncoupled."""
    producer = client.topic(fresh_topic("bench-plain")).producer(max_in_flight=WINDOW)
    producer.send(b"warm-up")  # connect outside the timing
    done = threading.Event()
    errors: list[Exception] = []
    sink = rs.acknowledger(on_error=errors.append, on_completed=done.set)
    stream = source.observe(
        subscription, subscription_type="Shared", start="earliest", max_in_flight=WINDOW
    )
    holder: list[Any] = []

    def work() -> None:
        holder.append(stream.pipe(ops.take(len(payloads))).subscribe(sink))
        send_all(producer, payloads)
        if not done.wait(TIMEOUT) or errors:
            raise RuntimeError(f"the backlog was not settled: {errors or 'timed out'}")

    run = measure("at once", len(payloads), work)
    holder[0].dispose()
    producer.close()
    assert sink.acked == len(payloads), sink.acked
    return run


def consume(source: rs.Topic, messages: int, subscription: str) -> Run:
    return measure_stage("consume", source, messages, lambda s: s, subscription, WINDOW, TIMEOUT)


def line(run: Run) -> str:
    where = "  ".join(
        f"{p} {run.cpu_us_of(p):5.1f}"
        for p in ("client", "gateway", "broker")
        if p in run.processes
    )
    return f"{run.name:<8} {run.rate:>7.0f} msg/s, us CPU/msg: {where}"


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    payloads = [b"b" * 100] * messages
    ratios: list[float] = []
    at_once_ratios: list[float] = []
    print(f"== bridge CPU vs consume + produce ({messages} messages of 100 B, client CPU only)")
    with local_pulsar() as url, rs.Client(url) as client:
        source = client.topic(fresh_topic("bench-bridge-in"))
        # each run's new subscription starts at the earliest message: the whole backlog
        send_all(source.producer(max_in_flight=WINDOW), payloads)
        produce(client, payloads[:2000])  # warm the gateway and broker up
        for index in range(pairs):
            kinds = ["consume", "produce", "bridge", "at once"]
            kinds = kinds[index % 4 :] + kinds[: index % 4]
            runs: dict[str, Run] = {}
            for kind in kinds:
                if kind == "consume":
                    runs[kind] = consume(source, messages, f"consume-{index}")
                elif kind == "produce":
                    runs[kind] = produce(client, payloads)
                elif kind == "bridge":
                    runs[kind] = bridge(client, source, messages, f"bridge-{index}")
                else:
                    runs[kind] = at_once(client, source, payloads, f"at-once-{index}")
            halves = runs["consume"].cpu_us + runs["produce"].cpu_us
            ratio = runs["bridge"].cpu_us / halves
            ratios.append(ratio)
            uncoupled = runs["bridge"].cpu_us / runs["at once"].cpu_us
            at_once_ratios.append(uncoupled)
            print(
                f"   pair {index + 1}: bridge/(consume + produce) = {ratio:.2f}x;"
                f" bridge/(both at once) = {uncoupled:.2f}x"
            )
            for kind in kinds:
                print(f"      {line(runs[kind])}")
    print(
        f"   client CPU ratio bridge/(consume + produce): {min(ratios):.2f}-{max(ratios):.2f}x"
        f" over {pairs} pairs, median {statistics.median(ratios):.2f}x (goal <= {GOAL}x)"
    )
    print(
        f"   against consuming and producing at once, uncoupled (the gateway's pace, as the"
        f" bridge's): {min(at_once_ratios):.2f}-{max(at_once_ratios):.2f}x,"
        f" median {statistics.median(at_once_ratios):.2f}x"
    )


if __name__ == "__main__":
    main()
