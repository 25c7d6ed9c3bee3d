"""A backlog of large messages read through local Pulsar's gateway, by each kind of consumer.

pulsar-lite stops dispatching to a consumer whose broker connection's write buffer reaches the
broker's high-water mark (64 KiB by default) and is not woken when the buffer drains; local
Pulsar sets the mark above any batch the broker writes (docs/local-pulsar.md). For each
subscription type and a reader this stores ``--count`` messages of ``--size`` bytes on a topic of
its own, reads them with ``topic.observe()``'s defaults (``max_in_flight=1000``) and acks each,
and prints how many came within ``--wait`` seconds, how long they took, whether they came in
order, and the broker's peak memory at the end. ``--default-mark`` starts pulsar-lite with its
own mark, to compare:

    python benchmarks/gateway_large_backlog.py
    python benchmarks/gateway_large_backlog.py --default-mark
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from typing import Any

import rxstargate as rs
from rxstargate.local import LocalPulsar, _broker

KINDS = ("Exclusive", "Failover", "Shared", "Key_Shared", "reader")


def read_backlog(ws_url: str, kind: str, size: int, count: int, wait: float) -> str:
    """One line: what a consumer of ``kind`` read of a fresh backlog, and how fast."""
    payloads = [i.to_bytes(4, "big") + bytes(size - 4) for i in range(count)]
    got: list[bytes] = []
    done = threading.Event()

    def on_next(message: rs.Message[Any]) -> None:
        got.append(message.payload)
        message.ack()
        if len(got) >= count:
            done.set()

    with rs.Client(ws_url) as client:
        topic = client.topic(f"persistent://public/default/large-{uuid.uuid4().hex[:8]}")
        producer = topic.producer()
        for payload in payloads:
            producer.on_next(payload)
        producer.flush()
        options: dict[str, Any] = {}
        if kind != "reader":
            options = {"subscription": "sub", "subscription_type": kind}
        started = time.monotonic()
        subscription = topic.observe(start="earliest", **options).subscribe(on_next=on_next)
        try:
            done.wait(wait)
            took = time.monotonic() - started
        finally:
            subscription.dispose()
    order = "in order" if got == payloads else "out of order or incomplete"
    return f"{kind:<10} {len(got):>5} of {count} in {took:6.2f} s, {order}"


def peak_memory_mib(pid: int | None) -> str:
    """The process's peak resident memory (Linux), or '?'."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return f"{int(line.split()[1]) // 1024} MiB"
    except OSError:
        pass
    return "?"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=512 * 1024, help="bytes per message")
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--wait", type=float, default=20.0, help="seconds to wait for each read")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--default-mark", action="store_true", help="pulsar-lite's own mark")
    args = parser.parse_args()
    if args.default_mark:
        lines = _broker._CONFIG.splitlines(keepends=True)
        _broker._CONFIG = "".join(line for line in lines if "water_mark" not in line)
    with LocalPulsar() as local:
        for _ in range(args.rounds):
            for kind in KINDS:
                print(
                    read_backlog(local.ws_url, kind, args.size, args.count, args.wait), flush=True
                )
        print(f"broker peak memory: {peak_memory_mib(local.broker_pid)}")


if __name__ == "__main__":
    main()
