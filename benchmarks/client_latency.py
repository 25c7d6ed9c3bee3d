"""Request/response latency: producer.send() vs a plain websocket-client send-then-recv loop.

Run: python benchmarks/client_latency.py [messages]
Each side sends one message at a time and waits for its ack, on the same gateway, in
interleaved rounds; reports the median and the 99th percentile round trip, and their ratios
overall and per round.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from _client_util import fresh_topic, local_pulsar, median_ms, plain_socket, send_frame, ws_path

import rxstargate as rs


def plain(url: str, messages: int) -> list[float]:
    ws = plain_socket(url + ws_path("producer", fresh_topic("lat-plain")))
    samples = []
    for i in range(messages):
        start = time.perf_counter()
        ws.send(send_frame(b"ping", str(i)))
        ack = json.loads(ws.recv())
        samples.append(time.perf_counter() - start)
        assert ack["result"] == "ok"
    ws.close()
    return samples


def rxstargate(url: str, messages: int) -> list[float]:
    with rs.Client(url) as client:
        producer = client.topic(fresh_topic("lat-rx")).producer()
        producer.send(b"warm-up")
        samples = []
        for _ in range(messages):
            start = time.perf_counter()
            producer.send(b"ping")
            samples.append(time.perf_counter() - start)
        return samples


def p99_ms(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] * 1000


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    rounds = 3
    with local_pulsar() as url:
        plain(url, 500)  # warm up
        pairs: list[tuple[list[float], list[float]]] = []
        for _ in range(rounds):  # interleaved: each round runs one side, then the other
            pairs.append((plain(url, messages), rxstargate(url, messages)))
    runs_plain = [sample for pair in pairs for sample in pair[0]]
    runs_rx = [sample for pair in pairs for sample in pair[1]]
    plain_median, rx_median = median_ms(runs_plain), median_ms(runs_rx)
    plain_p99, rx_p99 = p99_ms(runs_plain), p99_ms(runs_rx)
    print(f"\n== send() latency ({messages} messages x {rounds} rounds each, interleaved)")
    print(f"   plain websocket-client  median {plain_median:.3f} ms   p99 {plain_p99:.3f} ms")
    print(f"   rxstargate send()       median {rx_median:.3f} ms   p99 {rx_p99:.3f} ms")
    medians = [median_ms(rx) / median_ms(pl) for pl, rx in pairs]
    tails = [p99_ms(rx) / p99_ms(pl) for pl, rx in pairs]
    print(
        f"   median ratio rxstargate/plain: {rx_median / plain_median:.2f}x"
        f" (rounds {min(medians):.2f}-{max(medians):.2f}; goal <= 1.1)"
    )
    print(
        f"   p99 ratio rxstargate/plain:    {rx_p99 / plain_p99:.2f}x"
        f" (rounds {min(tails):.2f}-{max(tails):.2f}; goal <= 1.5)"
    )


if __name__ == "__main__":
    main()
