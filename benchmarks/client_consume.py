"""Consume a backlog: observe() + acknowledger vs a plain receive-and-ack loop.

Run: python benchmarks/client_consume.py [messages]
Both read the same backlog through their own Shared subscription with a window of 1,000
(rxstargate in pull mode with batched permits, the plain loop in push mode) and ack every
message. Reports wall-clock throughput and client CPU time per message.
"""

from __future__ import annotations

import json
import sys
import threading

import reactivex as rx
from _client_util import Run, fresh_topic, local_pulsar, measure, plain_socket, report, ws_path
from reactivex import operators as ops

import rxstargate as rs


def fill(url: str, topic: str, messages: int) -> None:
    with rs.Client(url) as client:
        producer = client.topic(topic).producer()
        rx.from_iterable([b"y" * 100] * messages).subscribe(producer)


def plain(url: str, topic: str, messages: int, subscription: str) -> Run:
    query = "?subscriptionType=Shared&receiverQueueSize=1000&subscriptionInitialPosition=Earliest"
    ws = plain_socket(url + ws_path("consumer", topic, subscription) + query)

    def work() -> None:
        for _ in range(messages):
            frame = json.loads(ws.recv())
            ws.send(json.dumps({"messageId": frame["messageId"]}))

    run = measure("plain websocket-client", messages, work)
    ws.close()
    return run


def rxstargate(url: str, topic: str, messages: int, subscription: str) -> Run:
    with rs.Client(url) as client:
        done = threading.Event()
        source = client.topic(topic).observe(
            subscription,
            subscription_type="Shared",
            max_in_flight=1000,
            subscription_initial_position="Earliest",
        )

        def work() -> None:
            source.pipe(ops.take(messages)).subscribe(rs.acknowledger(on_completed=done.set))
            done.wait()

        return measure("rxstargate observe+ack", messages, work)


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with local_pulsar() as url:
        topic = fresh_topic("bench-consume")
        # subscriptions start at the earliest message, so each sees the whole backlog
        fill(url, topic, messages)
        runs_plain, runs_rx = [], []
        for index in range(3):
            runs_plain.append(plain(url, topic, messages, f"plain-{index}"))
            runs_rx.append(rxstargate(url, topic, messages, f"rx-{index}"))
        report("consume a backlog and ack each message", runs_plain, runs_rx)


if __name__ == "__main__":
    main()
