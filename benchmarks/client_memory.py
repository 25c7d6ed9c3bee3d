"""Memory: RSS growth of a producer and a slow consumer at max_in_flight, and a Message's size.

Run: python benchmarks/client_memory.py [messages] [payload_bytes]

Streaming: against local Pulsar, produce ``messages`` (default 5,000) payloads of 100 KiB with
``max_in_flight=1000`` (each payload made fresh and dropped by the caller, so what stays is
what the producer keeps), then consume them with the same window through an observer that
sleeps 2 ms per message before it acks, so the window stays full. Each phase runs in a fresh
process of its own, twice: once with a thread sampling its RSS (/proc/self/statm) every 5 ms,
once under tracemalloc (Python allocations only, without the allocator's slack); each reports
its peak growth over the phase's start. The bound checked is the arithmetic of what the window
lets the client hold: ``max_in_flight x frame x k + constant`` (k and the constant below),
where a frame is the payload in base64 inside JSON (4/3 of it) on the producer's side and the
payload itself on the consumer's side. RSS at each fifth of the run shows that the growth
levels off instead of rising with the number of messages.

Message size: tracemalloc over building many Messages through the receiving path (the frame
decoder and the stream's message factory, as the receive and delivery threads call them),
with payloads of 100 B and 100 KiB, and with and without properties; reports bytes held per
Message beyond its payload bytes.
"""

from __future__ import annotations

import base64
import gc
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import reactivex as rx
from _client_util import fresh_topic, local_pulsar

import rxstargate as rs
from rxstargate._frames import decode_message
from rxstargate._message_factory import MessageFactory
from rxstargate.models import TopicName

WINDOW = 1000
KIB = 1024
MIB = 1024 * 1024
#: How many times the window's frames a side may hold at once, as (Python objects, RSS).
#: Producer: the pending frames (1), and the masked copy of what one write takes (at most
#: 1 MiB of frames: the I/O loop encodes a bounded share of the queue, not all of it).
#: Consumer: the decoded payloads (1), the base64 text of one socket read being decoded, and
#: the allocator's slack.
K_BOUND = {"producer": (1.5, 1.5), "consumer": (1.5, 1.5)}
CONSTANT_BOUND = 48 * MIB  # threads, sockets, buffers, the allocator: independent of the window
TIMEOUT = 600.0
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


class RssSampler:
    """Samples RSS on a thread; ``peak`` is the most seen, ``marks`` RSS at moments named."""

    def __init__(self, interval: float = 0.005) -> None:
        self.start = rss()
        self.peak = self.start
        self.marks: list[tuple[str, int]] = []
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, rss())

    def mark(self, name: str) -> None:
        now = rss()
        self.peak = max(self.peak, now)
        self.marks.append((name, now - self.start))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss())
        return self.peak - self.start


def payloads(count: int, size: int, marks: Callable[[int], None]) -> Iterator[bytes]:
    """Fresh payloads, one at a time: the caller keeps none of them."""
    for index in range(count):
        marks(index)
        yield bytes([index % 251]) * size


def produce(client: rs.Client, topic: str, count: int, size: int, on_index: Any) -> None:
    producer = client.topic(topic).producer(max_in_flight=WINDOW)
    done = threading.Event()
    failed: list[Any] = []
    producer.acks.subscribe(lambda a: a.ok or failed.append(a), on_completed=done.set)
    rx.from_iterable(payloads(count, size, on_index)).subscribe(producer)
    if not done.wait(TIMEOUT) or failed:
        raise RuntimeError(f"not every payload was stored: {failed[:3] or 'timed out'}")


def consume(client: rs.Client, topic: str, count: int, subscription: str, on_index: Any) -> None:
    done = threading.Event()
    errors: list[Exception] = []
    seen = [0]

    def slow(message: rs.Message[Any]) -> None:
        time.sleep(0.002)  # a slow observer: the window fills up behind it
        on_index(seen[0])
        seen[0] += 1
        message.ack()
        if seen[0] == count:
            done.set()

    def failed(error: Exception) -> None:
        errors.append(error)
        done.set()

    source = client.topic(topic).observe(
        subscription, subscription_type="Shared", start="earliest", max_in_flight=WINDOW
    )
    subscription_ = source.subscribe(slow, on_error=failed)
    try:
        if not done.wait(TIMEOUT) or errors:
            raise RuntimeError(f"not every message was consumed: {errors or 'timed out'}")
    finally:
        subscription_.dispose()


def measure(
    name: str, run: Callable[[Callable[[int], None]], None], count: int
) -> tuple[int, int, list[tuple[str, int]]]:
    """Peak RSS growth, peak tracemalloc growth, and RSS growth at each fifth of the run."""
    gc.collect()
    sampler = RssSampler()
    fifth = max(1, count // 5)

    def on_rss_index(index: int) -> None:
        if index and index % fifth == 0:
            sampler.mark(f"{index}")

    run(on_rss_index)
    rss_growth = sampler.stop()
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    run(lambda index: None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return rss_growth, peak - base, sampler.marks


def check(name: str, frame_bytes: float, rss_growth: int, traced: int, marks: Any) -> bool:
    window = WINDOW * frame_bytes
    k_traced, k_rss = K_BOUND[name]
    rss_bound = window * k_rss + CONSTANT_BOUND
    traced_bound = window * k_traced + CONSTANT_BOUND
    ok = rss_growth <= rss_bound and traced <= traced_bound
    print(
        f"   {name}: window = {WINDOW} x {frame_bytes / KIB:.0f} KiB = {window / MIB:.0f} MiB;"
        f" {'ok' if ok else 'OVER THE BOUND'}"
    )
    print(
        f"      RSS growth (peak)  {rss_growth / MIB:6.1f} MiB = {rss_growth / window:.2f} x the"
        f" window; bound {k_rss} x window + {CONSTANT_BOUND // MIB} MiB = {rss_bound / MIB:.0f} MiB"
    )
    print(
        f"      tracemalloc peak   {traced / MIB:6.1f} MiB = {traced / window:.2f} x the window;"
        f" bound {k_traced} x window + {CONSTANT_BOUND // MIB} MiB = {traced_bound / MIB:.0f} MiB"
    )
    steps = "  ".join(f"@{label}: {grown / MIB:.0f}" for label, grown in marks)
    print(f"      RSS growth (MiB) by messages done: {steps}")
    return ok


def phase(kind: str, url: str, topic: str, count: int, size: int) -> None:
    """One phase measured in this (fresh) process; prints its figures as JSON."""
    with rs.Client(url) as client:
        warm = client.topic(topic).producer(max_in_flight=WINDOW)
        warm.send(b"warm-up")  # connect outside the measurement
        warm.close()
        runs = iter(range(2))

        def producing(on_index: Callable[[int], None]) -> None:
            produce(client, topic, count, size, on_index)

        def consuming(on_index: Callable[[int], None]) -> None:
            consume(client, topic, count, f"slow-{next(runs)}", on_index)

        figures = measure(kind, producing if kind == "produce" else consuming, count)
    print(json.dumps(figures))


def streaming(count: int, size: int) -> bool:
    """Each phase in a process of its own, so that neither starts with the other's heap."""
    with local_pulsar() as url:
        topic = fresh_topic("bench-memory")
        results = {}
        for kind in ("produce", "consume"):
            command = [sys.executable, __file__, "--phase", kind, url, topic, str(count), str(size)]
            out = subprocess.run(
                command, check=True, capture_output=True, text=True, timeout=TIMEOUT
            )
            results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    frame = len(json.dumps({"payload": base64.b64encode(b"x" * size).decode(), "context": "1"}))
    print(f"\n== RSS growth with max_in_flight={WINDOW}, {count} payloads of {size} bytes")
    ok = check("producer", frame, *results["produce"])
    return check("consumer", size, *results["consume"]) and ok


class _Context:
    """What a MessageFactory reports bad times to (none here)."""

    def report(self, error: Exception) -> None:
        raise AssertionError(error)


def message_bytes(size: int, properties: dict[str, str], count: int) -> float:
    """Bytes held per Message built through the receiving path, over its payload bytes."""
    factory = MessageFactory(_Context(), TopicName.parse("t"), None)  # type: ignore[arg-type]
    text = base64.b64encode(bytes(range(256)) * (size // 256) + b"x" * (size % 256)).decode()
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    held = []
    for index in range(count):
        frame = json.dumps(
            {
                "messageId": base64.b64encode(b"\x08\x01\x10" + index.to_bytes(3)).decode(),
                "payload": text,
                "properties": properties,
                # a new millisecond every message: no publish time is shared
                "publishTime": f"2026-12-06T13:{index // 60000 % 60:02}:"
                f"{index // 1000 % 60:02}.{index % 1000:03}Z",
                "redeliveryCount": 0,
            }
        )
        held.append(factory.build(decode_message(frame), None))  # type: ignore[arg-type]
        del frame
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert all(len(m.payload) == size for m in held)
    if size < KIB and not properties:
        parts = {
            "Message": held[0],
            "MessageId": held[0].message_id,
            "id text": str(held[0].message_id),
            "publish_time": held[0].publish_time,
            "bytes header": b"",
        }
        sizes = ", ".join(f"{name} {sys.getsizeof(part)}" for name, part in parts.items())
        print(f"   its parts (sys.getsizeof, before the allocator's rounding): {sizes}")
    return (current - base) / count - size


def message_sizes() -> None:
    print("\n== bytes a Message holds beyond its payload (tracemalloc, decode_message + factory)")
    for size, count in ((100, 20_000), (100 * KIB, 1_000)):
        for properties in ({}, {"origin": "bench", "n": "1"}):
            over = message_bytes(size, properties, count)
            where = f"{len(properties)} properties" if properties else "no properties"
            print(f"   payload {size:>6} B, {where:<13}: {over:6.0f} bytes per Message")


def main() -> None:
    if sys.argv[1:2] == ["--phase"]:
        kind, url, topic, count_text, size_text = sys.argv[2:7]
        phase(kind, url, topic, int(count_text), int(size_text))
        return
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 100 * KIB
    message_sizes()
    if not streaming(count, size):
        sys.exit(1)


if __name__ == "__main__":
    main()
