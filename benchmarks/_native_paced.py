"""The floor of ``gateway_paced.py``: the official pulsar-client doing the gateway's work alone.

A plain Python process with one pulsar-client ``Client`` straight to the broker: a producer
(batching off, ``block_if_queue_full=True``, at most ``in_flight`` pending) sending from the
main thread, paced or not, each receipt taken by a callback; a consumer (Shared, receiver queue
1000) that acks every message (``acknowledge``), either from a receive thread (as the gateway
reads each consumer socket's messages today) or from a ``message_listener``. The parent reads
this process's CPU from ``/proc`` around each run; it drives it through stdin, one command a
line, and each answer is one line of stdout:

    prepare receive|listener   ->  ready          (a fresh topic, its consumer and producer)
    run RATE MESSAGES          ->  done ELAPSED   (RATE 0: full speed; seconds, wall clock)
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from typing import Any

import pulsar


class NativePair:
    """A producer and an acking consumer on one fresh topic of ``client``."""

    def __init__(self, client: pulsar.Client, consume: str, in_flight: int) -> None:
        topic = f"persistent://public/default/native-paced-{uuid.uuid4().hex[:8]}"
        self.received = 0
        self.expected = 0
        self.done = threading.Event()
        self._stopping = threading.Event()
        listener = self._on_message if consume == "listener" else None
        self._consumer = client.subscribe(
            topic,
            "bench",
            consumer_type=pulsar.ConsumerType.Shared,
            receiver_queue_size=1000,
            message_listener=listener,
        )
        self._producer = client.create_producer(
            topic,
            batching_enabled=False,
            block_if_queue_full=True,
            max_pending_messages=in_flight,
        )
        self._thread: threading.Thread | None = None
        if listener is None:
            self._thread = threading.Thread(target=self._receive, name="bench-receive")
            self._thread.start()

    def _count(self) -> None:
        self.received += 1
        if self.received == self.expected:
            self.done.set()

    def _on_message(self, consumer: Any, message: Any) -> None:
        consumer.acknowledge(message)
        self._count()

    def _receive(self) -> None:
        consumer = self._consumer
        while not self._stopping.is_set():
            try:
                message = consumer.receive(200)
            except pulsar.Timeout:
                continue
            consumer.acknowledge(message)
            self._count()

    def run(self, rate: float, messages: int, payload: bytes) -> float:
        """Send ``messages`` (paced at ``rate`` a second if not 0) and wait until every one was
        received and acked; returns the seconds it took."""
        self.received, self.expected = 0, messages
        self.done.clear()
        failures: list[Any] = []

        def sent(result: Any, _message_id: Any) -> None:
            if result != pulsar.Result.Ok:
                failures.append(result)

        start = time.perf_counter()
        for i in range(messages):
            if rate:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            self._producer.send_async(payload, sent)
        self._producer.flush()
        if not self.done.wait(60):
            raise SystemExit("the native consumer did not get every message within 60 s")
        if failures:
            raise SystemExit(f"{len(failures)} native sends failed, first: {failures[0]}")
        return time.perf_counter() - start

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        self._producer.close()
        self._consumer.close()


def serve(broker_url: str, payload_size: int, in_flight: int) -> None:
    """Answer the parent's commands on stdin until it closes it."""
    client = pulsar.Client(broker_url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))
    payload = b"x" * payload_size
    pair: NativePair | None = None
    try:
        for line in sys.stdin:
            command, *arguments = line.split()
            if command == "prepare":
                if pair is not None:
                    pair.close()
                pair = NativePair(client, arguments[0], in_flight)
                print("ready", flush=True)
            elif command == "run" and pair is not None:
                elapsed = pair.run(float(arguments[0]), int(arguments[1]), payload)
                print(f"done {elapsed}", flush=True)
    finally:
        if pair is not None:
            pair.close()
        client.close()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
