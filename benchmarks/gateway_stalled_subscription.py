"""A bystander's send times while a stalled Key_Shared subscription is used and closed.

pulsar-lite fixes a Key_Shared subscription's policy when its first consumer joins; one first
joined by the official client with the default (ordered) policy stalls for good once a consumer
leaves holding unacked messages (README, "Local Pulsar"). The broker then spins on that
subscription and stops serving the broker connection of every consumer on it. This benchmark
makes such a subscription on local Pulsar, then:

1. starts a bystander: a producer socket on an unrelated topic, sending one message at a time
   and timing each until its ack (a send that gets no ack within ``--cap`` seconds counts as
   ``--cap``), alone for ``--before`` seconds (the baseline: what the machine's load alone does);
2. opens a consumer socket on the stalled subscription, acks what it gets, closes it, opens
   another (as a reconnecting client would) and closes that too;
3. keeps the bystander going for ``--after`` more seconds.

It prints the bystander's worst and median send time before and from step 2 on:

    python benchmarks/gateway_stalled_subscription.py
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import threading
import time
import uuid

import pulsar
import websocket

from rxstargate.local import LocalPulsar


def stall_subscription(broker_url: str, topic: str, subscription: str) -> None:
    """Make ``subscription`` a stalled Key_Shared subscription, with the official client."""
    client = pulsar.Client(
        broker_url, logger=pulsar.FileLogger(pulsar.LoggerLevel.Error, "/dev/null")
    )
    try:
        # Consumer ids count from 0 in each client and pulsar-lite refuses two consumers with
        # one id on a subscription: keep this client's ids clear of the gateway's.
        for index in range(50):
            client.subscribe(f"{topic}-ids", f"skip-{index}").close()
        first = client.subscribe(  # the default policy: ordered, with key blocking
            topic, subscription, consumer_type=pulsar.ConsumerType.KeyShared, receiver_queue_size=10
        )
        producer = client.create_producer(topic, batching_enabled=False)
        for index in range(3000):
            producer.send_async(str(index).encode(), None, partition_key=f"k{index % 7}")
        producer.flush()
        for _ in range(20):
            first.receive(10_000)
        first.close()  # leaves holding unacked messages: their keys are blocked for good
    finally:
        client.close()


class Bystander:
    """A producer socket sending one message at a time, timing each until its ack."""

    def __init__(self, url: str, cap: float) -> None:
        self._sock = websocket.create_connection(url, timeout=cap)
        self._cap = cap
        self.times: list[float] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-bystander")

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        payload = base64.b64encode(b"bystander").decode("ascii")
        index = 0
        while not self._stop.is_set():
            started = time.monotonic()
            self._sock.send(json.dumps({"payload": payload, "context": str(index)}))
            try:
                ack = json.loads(self._sock.recv())
            except websocket.WebSocketTimeoutException:
                self.times.append(self._cap)
                return  # an ack that never came: the rest would be as late
            self.times.append(time.monotonic() - started)
            self.failed += ack["result"] != "ok"
            index += 1
            self._stop.wait(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self._cap + 5)
        self._sock.close()


def use_and_close(url: str, quiet: float, cap: float) -> str:
    """Open a consumer socket, ack until nothing comes for ``quiet`` s, close it; what it got."""
    started = time.monotonic()
    try:
        sock = websocket.create_connection(url, timeout=cap)
    except websocket.WebSocketBadStatusException as exc:
        return f"HTTP {exc.status_code} after {time.monotonic() - started:.1f} s"
    except (websocket.WebSocketException, OSError) as exc:
        return f"no socket after {time.monotonic() - started:.1f} s ({exc})"
    sock.settimeout(quiet)
    got = 0
    try:
        while True:
            message = json.loads(sock.recv())
            got += 1
            sock.send(json.dumps({"messageId": message["messageId"]}))
    except websocket.WebSocketTimeoutException:
        pass
    sock.close()
    return f"{got} of 3,000 messages"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cap", type=float, default=60.0, help="longest wait for one ack (s)")
    parser.add_argument("--before", type=float, default=10.0, help="baseline time (s)")
    parser.add_argument("--after", type=float, default=20.0, help="bystander time after (s)")
    args = parser.parse_args()
    topic = f"persistent://public/default/stalled-{uuid.uuid4().hex[:8]}"
    with LocalPulsar() as local:
        stall_subscription(local.broker_url, topic, "stalled")
        path = topic.replace("://", "/")
        bystander = Bystander(
            f"{local.ws_url}/ws/v2/producer/persistent/public/default/bystander-{uuid.uuid4().hex[:8]}",
            args.cap,
        )
        bystander.start()
        time.sleep(args.before)
        baseline = len(bystander.times)
        consumer_url = f"{local.ws_url}/ws/v2/consumer/{path}/stalled?subscriptionType=Key_Shared"
        started = time.monotonic()
        got = [use_and_close(consumer_url, 3.0, args.cap) for _ in range(2)]
        time.sleep(args.after)
        bystander.stop()
        elapsed = time.monotonic() - started
    before, during = bystander.times[:baseline], bystander.times[baseline:]
    print(f"stalled subscription: its first socket got {got[0]}, the second {got[1]}")
    print(f"bystander alone, {args.before:.0f} s: {_summary(before)}")
    print(
        f"bystander with the stalled subscription, {elapsed:.0f} s: {_summary(during)}"
        f" ({bystander.failed} failed in all)"
    )


def _summary(times: list[float]) -> str:
    if not times:
        return "no sends"
    worst, median = max(times), statistics.median(times) * 1000
    return f"{len(times)} sends, worst {worst:.3f} s, median {median:.1f} ms"


if __name__ == "__main__":
    main()
