"""Pipelined produce: the Producer as an Rx Observer vs a plain websocket-client loop.

Run: python benchmarks/client_produce.py [messages]
Both keep at most 1,000 messages unacknowledged; the plain loop uses a sender and an
ack-reader thread. Reports wall-clock throughput and client CPU time per message.
"""

from __future__ import annotations

import sys
import threading

import reactivex as rx
from _client_util import (
    Run,
    fresh_topic,
    local_pulsar,
    measure,
    plain_produce,
    report,
)

import rxstargate as rs

WINDOW = 1000


def plain(url: str, messages: int, payload: bytes) -> Run:
    run = plain_produce(url, fresh_topic("bench-plain"), messages, payload, WINDOW)
    run.name = "plain websocket-client"
    return run


def rxstargate(url: str, messages: int, payload: bytes) -> Run:
    with rs.Client(url) as client:
        producer = client.topic(fresh_topic("bench-rx")).producer(max_in_flight=WINDOW)
        producer.send(b"warm-up")  # connect outside the timing, as the plain loop does
        done = threading.Event()
        failed = []
        producer.acks.subscribe(lambda a: a.ok or failed.append(a), on_completed=done.set)

        def work() -> None:
            rx.from_iterable([payload] * messages).subscribe(producer)
            done.wait()

        run = measure("rxstargate Observer", messages, work)
        assert not failed
        return run


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    payload = b"x" * 100
    with local_pulsar() as url:
        plain(url, 2000, payload)  # warm the gateway and broker up
        runs_plain, runs_rx = [], []
        for _ in range(3):
            runs_plain.append(plain(url, messages, payload))
            runs_rx.append(rxstargate(url, messages, payload))
        report("pipelined produce, 100-byte payloads", runs_plain, runs_rx)


if __name__ == "__main__":
    main()
