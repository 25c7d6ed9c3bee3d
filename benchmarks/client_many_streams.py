"""Many streams on one client: threads per stream, and client CPU per message as streams grow.

Run: python benchmarks/client_many_streams.py [--streams 1,100,1000] [--busy 1,100]
                                   [--messages 20000] [--rounds 3] [--connectors threads,loop]

For each connector, "threads" (websocket-client's Connection: a receive and a writer thread
per socket, the default before the I/O loop) and "loop" (``IOLoop``, the default: one thread
for every socket of the client):

- threads: N consumers open on one topic, each past its first message; the client process's
  threads are counted (the client's keepalive and the loop are the constant part), and its
  CPU time over three seconds in which nothing arrives;
- CPU per message: N busy consumers each read M messages published (by a child process, so that
  producing is not counted; it starts before the clock) after all of them were open; N x M is
  the same for every N. Client CPU time over the N x M deliveries. The two connectors run
  interleaved, round by round; each line gives the range, then the ratios of the best and of
  the median rounds (on a shared machine, many short rounds and their medians are steadier).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from _client_util import fresh_topic, local_pulsar

import rxstargate as rs
from rxstargate._ioloop import IOLoop
from rxstargate._transport import Connection

CONNECTORS: dict[str, Callable[[], Any]] = {
    "threads": lambda: Connection.open,
    "loop": IOLoop,
}
OPEN_TIMEOUT = 180.0
WAVE = 50
IDLE_SETTLE = 0.5  # seconds after the last consumer opened before idle CPU is measured
IDLE_SECONDS = 3.0


def produce(url: str, topic: str, count: int, ready: Any = None, go: Any = None) -> None:
    """Publish ``count`` messages of 100 bytes; in a child process, once its producer is open
    (``ready``) and the parent says ``go``."""
    with rs.Client(url) as client:
        producer = client.topic(topic).producer()
        if ready is not None:
            ready.set()
            if not go.wait(OPEN_TIMEOUT):
                raise TimeoutError("no go from the parent")
        for _ in range(count):
            producer.send_then(b"m" * 100, lambda ack: None)
        producer.flush(timeout=OPEN_TIMEOUT)


class Consumers:
    """``count`` consumers of ``topic`` on one client, each acking and counting what it receives.

    They open in waves of ``WAVE``, each wave past its first message before the next starts:
    a thousand handshakes at once take local Pulsar's gateway longer than ``connect_timeout``
    on a busy two-core machine.

    Each observer counts its own messages without a lock (only its stream's delivery thread
    calls it) and wakes the waiting main thread once, when its stream reaches the count waited
    for: an observer that woke it on every message made the benchmark's own thread compete for
    the GIL with the delivery threads, a cost that grew with the streams and was not the
    client's.
    """

    def __init__(self, client: rs.Client, topic: str, count: int) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._counts = [0] * count
        self._goal = 1  # messages each stream is waited for
        self._behind: set[int] = set()  # streams of the current wait below the goal
        self.subscriptions: list[Any] = []
        for start in range(0, count, WAVE):
            wave = range(start, min(count, start + WAVE))
            # Consumers on a Shared subscription each: pulsar-lite's Exclusive dispatcher
            # (which a reader uses) now and then stalls a backlog under load, see the README.
            self.subscriptions += [
                client.topic(topic)
                .observe(f"s{index}", subscription_type="Shared", start="earliest")
                .subscribe(self._observer(index))
                for index in wave
            ]
            self.wait(wave, 1, OPEN_TIMEOUT)

    @property
    def received(self) -> int:
        return sum(self._counts)

    def _observer(self, index: int) -> Callable[[Any], None]:
        counts = self._counts

        def on_next(message: Any) -> None:
            message.ack()
            counts[index] += 1
            if counts[index] == self._goal:
                self._reached(index)

        return on_next

    def _reached(self, index: int) -> None:
        with self._changed:
            self._behind.discard(index)
            if not self._behind:
                self._changed.notify_all()

    def wait(self, streams: range, goal: int, timeout: float) -> None:
        """Wait until each of ``streams`` received ``goal`` messages."""
        deadline = time.monotonic() + timeout
        with self._changed:
            # Set before the counts are read: a stream that reaches the goal after its count
            # was read here sees it, and says so.
            self._goal = goal
            self._behind = {index for index in streams if self._counts[index] < goal}
            while self._behind:
                left = deadline - time.monotonic()
                if left <= 0:
                    reached = sum(1 for index in streams if self._counts[index] >= goal)
                    raise TimeoutError(
                        f"{reached} consumers of {len(streams)} past {goal} messages,"
                        f" {self.received} messages after {timeout:.0f} s"
                    )
                self._changed.wait(left)


def open_streams(url: str, connector: str, count: int) -> tuple[int, float, float]:
    """Threads of the process with ``count`` consumers open, seconds to open them, and the
    client's CPU milliseconds a second while they wait with nothing to receive."""
    topic = fresh_topic("bench-many")
    produce(url, topic, 1)
    baseline = threading.active_count()
    started = time.perf_counter()
    with rs.Client(url, connect=CONNECTORS[connector]()) as client:
        Consumers(client, topic, count)  # returns once each is past its first message
        seconds = time.perf_counter() - started
        threads = threading.active_count() - baseline
        time.sleep(IDLE_SETTLE)  # the first message's ack and permit leave
        cpu = time.process_time()
        time.sleep(IDLE_SECONDS)
        idle = (time.process_time() - cpu) / IDLE_SECONDS * 1e3
    return threads, seconds, idle


def busy_streams(url: str, connector: str, count: int, per_stream: int) -> float:
    """Client CPU µs per delivered message with ``count`` consumers each reading ``per_stream``."""
    topic = fresh_topic("bench-busy")
    produce(url, topic, 1)  # each consumer's first message says it is open
    spawn = multiprocessing.get_context("spawn")
    ready, go = spawn.Event(), spawn.Event()
    with rs.Client(url, connect=CONNECTORS[connector]()) as client:
        consumers = Consumers(client, topic, count)
        # The producing process starts (and opens its producer) before the clock does: the CPU
        # of starting a process is not the client's.
        child = spawn.Process(target=produce, args=(url, topic, per_stream, ready, go))
        child.start()
        if not ready.wait(OPEN_TIMEOUT):
            raise TimeoutError("the producing process did not start")
        # The process's first full collection walks every object of the setup (a hundred
        # streams' threads, locks and sockets); it comes once in a process's life, so it is
        # done before the clock, at every N: otherwise it falls inside the clock by chance.
        gc.collect()
        cpu = time.process_time()
        go.set()
        consumers.wait(range(count), per_stream + 1, OPEN_TIMEOUT)
        spent = time.process_time() - cpu
        child.join(OPEN_TIMEOUT)
    return spent / (count * per_stream) * 1e6


def print_threads(url: str, counts: list[int]) -> None:
    print("== threads of the client process with N consumers open, and its CPU while idle")
    for count in counts:
        for connector in CONNECTORS:
            threads, seconds, idle = open_streams(url, connector, count)
            print(
                f"   {connector:<18} N={count:<5} {threads:>5} threads"
                f" ({threads / count:.2f} per stream), opened in {seconds:.1f} s,"
                f" idle {idle:.2f} ms CPU a second"
            )


def print_cpu(url: str, busy: list[int], messages: int, rounds: int) -> None:
    print(f"\n== client CPU per message, N busy consumers, {messages} deliveries per run")
    results: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for count in busy:
            for connector in CONNECTORS:
                cost = busy_streams(url, connector, count, messages // count)
                results.setdefault((connector, count), []).append(cost)
    for connector in CONNECTORS:
        line = [f"   {connector:<18}"]
        for count in busy:
            costs = results[(connector, count)]
            line.append(f"N={count}: {min(costs):.1f}-{max(costs):.1f} µs")
        first, last = (min(results[(connector, n)]) for n in (busy[0], busy[-1]))
        line.append(f"best N={busy[-1]} / N={busy[0]}: {last / first:.2f}x")
        first, last = (statistics.median(results[(connector, n)]) for n in (busy[0], busy[-1]))
        line.append(f"medians: {last / first:.2f}x")
        print("   ".join(line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", default="1,100,1000", help="stream counts for threads")
    parser.add_argument("--busy", default="1,100", help="stream counts for CPU per message")
    parser.add_argument("--messages", type=int, default=20_000, help="deliveries per run")
    parser.add_argument("--rounds", type=int, default=3, help="0: threads only")
    parser.add_argument("--connectors", default="threads,loop", help="threads, loop or both")
    args = parser.parse_args()
    for name in list(CONNECTORS):
        if name not in args.connectors.split(","):
            del CONNECTORS[name]
    with local_pulsar() as url:
        if args.streams:
            print_threads(url, [int(n) for n in args.streams.split(",")])
        if args.rounds:
            print_cpu(url, [int(n) for n in args.busy.split(",")], args.messages, args.rounds)


if __name__ == "__main__":
    main()
