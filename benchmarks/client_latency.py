"""Request/response latency: producer.send() vs a plain websocket-client send-then-recv loop.

Run: python benchmarks/client_latency.py [messages]
Each side sends one message at a time and waits for its ack; reports the median and the
99th percentile round trip.
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
    with local_pulsar() as url:
        plain(url, 500)  # warm up
        runs_plain: list[float] = []
        runs_rx: list[float] = []
        for _ in range(3):
            runs_plain += plain(url, messages)
            runs_rx += rxstargate(url, messages)
    plain_median, rx_median = median_ms(runs_plain), median_ms(runs_rx)
    print(f"\n== send() latency ({messages} messages x 3 runs each)")
    print(
        f"   plain websocket-client  median {plain_median:.3f} ms   p99 {p99_ms(runs_plain):.3f} ms"
    )
    print(f"   rxstargate send()       median {rx_median:.3f} ms   p99 {p99_ms(runs_rx):.3f} ms")
    print(f"   median ratio rxstargate/plain: {rx_median / plain_median:.2f}x (goal <= 1.15)")


if __name__ == "__main__":
    main()
