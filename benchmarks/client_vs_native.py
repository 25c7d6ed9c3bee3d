"""Client CPU per message: rxstargate (through the WebSocket gateway) vs the official client.

Run: python benchmarks/client_vs_native.py [messages] [--profile PREFIX] [--consume-only]

One process, one local Pulsar (broker and gateway in their own processes). Three pairs, each
side in turn: (a) produce ``messages`` of 100 bytes, unbatched, at most 1,000 in flight
(rxstargate's Producer as an Observer, then ``flush()``; the official client's ``send_async``
with ``block_if_queue_full=True``, batching off, ``max_pending_messages=1000``, then ``flush()``);
(b) consume and ack the messages that side's producer stored, from a fresh Shared subscription
with a window of 1,000 (``observe()`` + ``acknowledger()``; ``subscribe`` + ``receive`` +
``acknowledge``). The figure is this process's CPU time (every thread, the official client's
C++ threads included) per message, and the ratio rxstargate/official client per pair.

``--threads`` shows, for the last pair, how rxstargate's CPU per message splits over its
threads (CPU clocks of the threads still alive at the end of each run: a consumer's writer
has ended by then, its share is in the process total only), and how much of it was the cyclic
garbage collector's.

``--profile PREFIX`` runs one more rxstargate produce and consume under cProfile (every thread)
into PREFIX-produce.prof and PREFIX-consume.prof (read with ``python -m pstats``).

``--consume-only`` stores the messages once for each side and runs only consume-and-ack pairs
(``--pairs`` of them, 3 by default), each on a fresh subscription: quicker, for comparing two
versions of the consuming path run after run.

``--payload BYTES`` sets the message size (100). ``--speedups`` compares rxstargate's consume and
ack with and without the ``speedups`` extra's client accelerators (msgspec for the frames,
pybase64 for long payloads; whichever is installed: ``pip install 'rxstargate[speedups]'``), in
turn on one topic. ``RXSTARGATE_SPEEDUPS=0`` runs the whole benchmark without them.
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import threading
import time
from collections.abc import Callable
from typing import ClassVar

import pulsar
from _client_util import Run, fresh_topic, local_pulsar_urls, measure
from reactivex import operators as ops

import rxstargate as rs
from rxstargate import _base64, _frames

WINDOW = 1000
PAYLOAD = b"x" * 100
TIMEOUT = 300.0


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of each live thread, by name without its topic."""
    spent: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            clock = time.pthread_getcpuclockid(thread.ident)
            seconds = time.clock_gettime(clock)
        except (OSError, ProcessLookupError):
            continue  # it ended meanwhile
        name = thread.name.split("-persistent:")[0].rsplit("-bench", 1)[0]
        name = "-".join(name.split("-")[:2]) if name.startswith("rxstargate-") else name
        spent[name] = spent.get(name, 0.0) + seconds
    return spent


class _CollectorClock:
    """CPU time spent in the cyclic garbage collector, on whichever thread it ran."""

    def __init__(self) -> None:
        self.spent = 0.0
        self._started: dict[int, float] = {}
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now, thread = time.thread_time(), threading.get_ident()
        if phase == "start":
            self._started[thread] = now
        else:
            self.spent += now - self._started.pop(thread, now)


class ThreadSplit:
    """Per-thread CPU of the runs made while it is active (``--threads``), and the garbage
    collector's share of it."""

    active = False
    last: ClassVar[dict[str, dict[str, float]]] = {}
    collector: _CollectorClock | None = None

    @classmethod
    def around(cls, label: str, messages: int, work: Callable[[], None]) -> Callable[[], None]:
        if not cls.active:
            return work

        if cls.collector is None:
            cls.collector = _CollectorClock()
        collector = cls.collector

        def measured() -> None:
            before, collected = thread_cpu(), collector.spent
            work()
            after = thread_cpu()
            cls.last[label] = {
                name: (after[name] - before.get(name, 0.0)) / messages * 1e6 for name in after
            }
            cls.last[label]["(of which the garbage collector)"] = (
                (collector.spent - collected) / messages * 1e6
            )

        return measured


def _native_client(broker_url: str) -> pulsar.Client:
    return pulsar.Client(broker_url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))


def produce_rx(ws_url: str, topic: str, messages: int) -> tuple[Run, int]:
    with rs.Client(ws_url) as client:
        producer = client.topic(topic).producer(max_in_flight=WINDOW)
        producer.send(b"warm-up")  # connect outside the timing, as the native side does
        stored = [0]
        producer.acks.subscribe(lambda ack: ack.ok and stored.__setitem__(0, stored[0] + 1))

        def work() -> None:
            on_next = producer.on_next
            for _ in range(messages):
                on_next(PAYLOAD)
            producer.flush(TIMEOUT)

        run = measure("rxstargate produce", messages, ThreadSplit.around("produce", messages, work))
        producer.close()
    return run, stored[0]


def produce_native(broker_url: str, topic: str, messages: int) -> tuple[Run, int]:
    client = _native_client(broker_url)
    try:
        producer = client.create_producer(
            topic,
            batching_enabled=False,
            block_if_queue_full=True,
            max_pending_messages=WINDOW,
        )
        producer.send(b"warm-up")
        stored = [0]
        lock = threading.Lock()

        def sent(result: pulsar.Result, message_id: object) -> None:
            if result == pulsar.Result.Ok:
                with lock:
                    stored[0] += 1

        def work() -> None:
            send_async = producer.send_async
            for _ in range(messages):
                send_async(PAYLOAD, sent)
            producer.flush()

        run = measure("native produce", messages, work)
        producer.close()
    finally:
        client.close()
    return run, stored[0]


def consume_rx(ws_url: str, topic: str, messages: int, subscription: str) -> tuple[Run, int]:
    with rs.Client(ws_url) as client:
        done = threading.Event()
        sink = rs.acknowledger(on_completed=done.set, on_error=lambda _: done.set())
        source = client.topic(topic).observe(
            subscription,
            subscription_type="Shared",
            max_in_flight=WINDOW,
            subscription_initial_position="Earliest",
        )

        def work() -> None:
            source.pipe(ops.take(messages)).subscribe(sink)
            if not done.wait(TIMEOUT):
                raise RuntimeError("rxstargate consume timed out")

        run = measure(
            "rxstargate consume+ack", messages, ThreadSplit.around("consume", messages, work)
        )
    return run, sink.acked


def consume_native(
    broker_url: str, topic: str, messages: int, subscription: str
) -> tuple[Run, int]:
    client = _native_client(broker_url)
    received = [0]
    try:

        def work() -> None:
            consumer = client.subscribe(
                topic,
                subscription,
                consumer_type=pulsar.ConsumerType.Shared,
                receiver_queue_size=WINDOW,
                initial_position=pulsar.InitialPosition.Earliest,
            )
            receive, acknowledge = consumer.receive, consumer.acknowledge
            for _ in range(messages):
                acknowledge(receive(int(TIMEOUT * 1000)))
                received[0] += 1
            consumer.close()  # flushes grouped acks

        run = measure("native consume+ack", messages, work)
    finally:
        client.close()
    return run, received[0]


def _pair(
    label: str,
    rx_side: Callable[[], tuple[Run, int]],
    native_side: Callable[[], tuple[Run, int]],
    expected: int,
) -> tuple[Run, Run]:
    rx_run, rx_count = rx_side()
    native_run, native_count = native_side()
    for name, count in (("rxstargate", rx_count), ("native", native_count)):
        if count != expected:
            raise RuntimeError(f"{label}: {name} counted {count} of {expected} messages")
    return rx_run, native_run


def _table(title: str, pairs: list[tuple[Run, Run]]) -> None:
    print(f"\n== {title} ({pairs[0][0].messages} messages, {len(pairs)} pairs)")
    print(
        "   pair   rxstargate us/msg   native us/msg   ratio"
        "   (kernel share rx/native; gateway+broker us/msg)"
    )
    ratios = []
    for index, (rx_run, native_run) in enumerate(pairs, 1):
        ratio = rx_run.cpu_us / native_run.cpu_us
        ratios.append(ratio)
        servers = (
            f"{rx_run.system / rx_run.cpu:.0%}/{native_run.system / native_run.cpu:.0%};"
            f" rx {rx_run.cpu_us_of('gateway'):.0f}+{rx_run.cpu_us_of('broker'):.0f},"
            f" native -+{native_run.cpu_us_of('broker'):.0f}"
        )
        print(
            f"   {index:>4}   {rx_run.cpu_us:>17.1f}   {native_run.cpu_us:>13.1f}"
            f"   {ratio:>5.2f}x  ({servers})"
        )
    print(f"   ratio rxstargate/native: {min(ratios):.2f}-{max(ratios):.2f}x (goal <= 1.25)")


def _profile(ws_url: str, messages: int, prefix: str) -> None:
    from _thread_profile import profile_threads

    topic = fresh_topic("cpu-profile")
    with profile_threads(f"{prefix}-produce.prof"):
        produce_rx(ws_url, topic, messages)
    with profile_threads(f"{prefix}-consume.prof"):
        consume_rx(ws_url, topic, messages, "profile")
    print(f"\nprofiles written: {prefix}-produce.prof, {prefix}-consume.prof")


def _speedups(ws_url: str, messages: int, pairs: int) -> None:
    """Consume and ack with the accelerators off, then on, ``pairs`` times, one topic."""
    accelerator, codec = _base64.load_accelerator(), _frames.load_accelerator()
    names = [name for name, on in (("msgspec", codec), ("pybase64", accelerator)) if on]
    if not names:
        print("\n== speedups: neither msgspec nor pybase64 is installed (or RXSTARGATE_SPEEDUPS=0)")
        return
    topic = fresh_topic("cpu-speedups")
    produce_rx(ws_url, topic, messages)
    time.sleep(0.5)
    runs: list[tuple[Run, Run]] = []
    for index in range(pairs):
        _base64.use_accelerator(None)
        _frames.use_accelerator(None)
        plain, _ = consume_rx(ws_url, topic, messages, f"plain-{index}")
        _base64.use_accelerator(accelerator)
        _frames.use_accelerator(codec)
        fast, _ = consume_rx(ws_url, topic, messages, f"fast-{index}")
        runs.append((fast, plain))
    print(
        f"\n== consume and ack, {len(PAYLOAD)}-byte payloads: with the speedups extra"
        f" ({', '.join(names)}) / without ({messages} messages, {pairs} pairs)"
    )
    ratios = [fast.cpu_us / plain.cpu_us for fast, plain in runs]
    for index, (fast, plain) in enumerate(runs, 1):
        print(f"   {index:>4}   {fast.cpu_us:>9.1f} / {plain.cpu_us:>9.1f} us/msg")
    print(f"   ratio with/without: {min(ratios):.2f}-{max(ratios):.2f}x")


def _consume_only(ws_url: str, broker_url: str, messages: int, pairs: int) -> None:
    """Consume-and-ack pairs only, each side from the messages its producer stored once."""
    rx_topic, native_topic = fresh_topic("cpu-rx"), fresh_topic("cpu-native")
    split, ThreadSplit.active = ThreadSplit.active, False  # the split shown is a consumer's
    produce_rx(ws_url, rx_topic, messages)
    ThreadSplit.active = split
    produce_native(broker_url, native_topic, messages)
    time.sleep(0.5)  # let the broker settle what it stored before reading it back
    consume_rx(ws_url, rx_topic, min(messages, 2000), "warm-up")
    consumed = [
        _pair(
            "consume",
            functools.partial(consume_rx, ws_url, rx_topic, messages, f"rx-{index}"),
            functools.partial(consume_native, broker_url, native_topic, messages, f"nt-{index}"),
            messages,
        )
        for index in range(pairs)
    ]
    _table("consume and ack, client CPU per message", consumed)
    ratios = sorted(rx.cpu_us / native.cpu_us for rx, native in consumed)
    print(f"   median ratio: {statistics.median(ratios):.2f}x")
    _thread_splits()


def main() -> None:
    global PAYLOAD
    parser = argparse.ArgumentParser()
    parser.add_argument("messages", nargs="?", type=int, default=20_000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--profile", metavar="PREFIX")
    parser.add_argument("--threads", action="store_true")
    parser.add_argument("--payload", type=int, default=len(PAYLOAD), help="bytes per message")
    parser.add_argument("--speedups", action="store_true", help="only: with/without the extra")
    parser.add_argument("--consume-only", action="store_true", help="only consume-and-ack pairs")
    args = parser.parse_args()
    PAYLOAD = b"x" * args.payload
    ThreadSplit.active = args.threads
    messages = args.messages
    with local_pulsar_urls() as (ws_url, broker_url):
        if args.speedups:
            _speedups(ws_url, messages, args.pairs)
            return
        if args.consume_only:
            _consume_only(ws_url, broker_url, messages, args.pairs)
            return
        # warm the gateway and the broker up
        produce_rx(ws_url, fresh_topic("warm-rx"), 2000)
        produce_native(broker_url, fresh_topic("warm-native"), 2000)
        produced: list[tuple[Run, Run]] = []
        consumed: list[tuple[Run, Run]] = []
        for index in range(args.pairs):
            rx_topic, native_topic = fresh_topic("cpu-rx"), fresh_topic("cpu-native")
            produced.append(
                _pair(
                    "produce",
                    functools.partial(produce_rx, ws_url, rx_topic, messages),
                    functools.partial(produce_native, broker_url, native_topic, messages),
                    messages,
                )
            )
            time.sleep(0.5)  # let the broker settle what it stored before reading it back
            # each side reads the messages it stored, from the earliest, and acks them
            consumed.append(
                _pair(
                    "consume",
                    functools.partial(consume_rx, ws_url, rx_topic, messages, f"rx-{index}"),
                    functools.partial(
                        consume_native, broker_url, native_topic, messages, f"nt-{index}"
                    ),
                    messages,
                )
            )
        if args.profile:
            ThreadSplit.active = False  # the split shown is of the last pair, not profiled
            _profile(ws_url, messages, args.profile)
    _table("produce, client CPU per message", produced)
    _table("consume and ack, client CPU per message", consumed)
    _thread_splits()


def _thread_splits() -> None:
    for label, split in ThreadSplit.last.items():
        shown = ", ".join(
            f"{name} {us:.1f}"
            for name, us in sorted(split.items(), key=lambda i: -i[1])
            if us > 0.05
        )
        print(f"\n   rxstargate {label}, us/msg by thread (last pair): {shown}")


if __name__ == "__main__":
    main()
