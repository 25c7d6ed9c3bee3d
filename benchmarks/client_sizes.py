"""Throughput by payload size, 100 B to 512 KiB: rxstargate vs the plain websocket-client loops.

Run: python benchmarks/client_sizes.py [--sizes 100,1024,10240,102400,524288] [--rounds 3]
     [--mb 40] [--min-messages 200] [--max-messages 20000] [--window 1000] [--window-mib 16]
     [--speedups both|on|off] [--profile PREFIX]

For each payload size, produce and then consume-and-ack the same random bytes on the same local
Pulsar, rxstargate against the baselines of ``client_produce.py`` and ``client_consume.py``,
both sides with the same window (``max_in_flight`` / at most that many unacknowledged):

- produce: the Producer as an Rx Observer, against a plain loop with a sender and an ack-reader
  thread (standard library base64 and json for the send frame).
- consume and ack: ``observe()`` + ``acknowledger()`` against a plain receive-and-ack loop
  (``receiverQueueSize`` = the window) that decodes each payload with the standard library's
  base64, as rxstargate hands every message its bytes. Each reads the size's backlog through a
  Shared subscription of its own, from the earliest message.

The window is 1,000 messages, and at most ``--window-mib`` MiB of payload (32 messages of
512 KiB): with 1,000 messages of 512 KiB allowed, pulsar-lite's Shared dispatcher stops after
20 of them (the official client alone, straight to the broker, too) until the gateway nudges it
a second later, and that stall, not either client, would set the figure.

Each round moves about ``--mb`` MB (10^6 bytes) of payload: the message count is that over the
size, at least ``--min-messages`` and at most ``--max-messages``. The runs of one size are
interleaved (plain, rxstargate, ..., the order swapped every other round), ``--rounds`` times.
``--speedups both`` (the default, when msgspec, pybase64 or websockets is installed) runs
rxstargate twice a round, with the ``speedups`` extra's accelerators and without (the pure
path); the plain loops always use the standard library. Reports MB/s of payload, msg/s, this
process's CPU per message and per MB, the gateway's and the broker's CPU per MB, and the ratios
of each round's pair: rxstargate/plain for throughput, plain/rxstargate for CPU (higher is
better for both).
``--profile PREFIX`` writes a cProfile (every thread) of one rxstargate produce and one consume
round of the largest size, and prints its top functions, instead of the runs.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pstats
import statistics
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import reactivex as rx
from _client_util import (
    Run,
    fresh_topic,
    local_pulsar_urls,
    measure,
    plain_produce,
    plain_socket,
    ws_path,
)
from reactivex import operators as ops

import rxstargate as rs
from rxstargate import _base64, _frames, _wsmask

MB = 1_000_000
MIB = 1024 * 1024
TIMEOUT = 300.0  # seconds a run may take before it counts as hung
SIZES = "100,1024,10240,102400,524288"


@dataclass(frozen=True)
class Load:
    """What the runs of one size move: ``messages`` copies of ``payload``, ``window`` in flight."""

    payload: bytes
    messages: int
    window: int


# The plain loops: what a user would write with websocket-client alone.


def produce_plain(url: str, load: Load) -> Run:
    topic = fresh_topic("sizes-plain")
    return plain_produce(url, topic, load.messages, load.payload, load.window, TIMEOUT)


def consume_plain(url: str, topic: str, subscription: str, load: Load) -> Run:
    messages, window, size = load.messages, load.window, len(load.payload)
    query = (
        f"?subscriptionType=Shared&receiverQueueSize={window}&subscriptionInitialPosition=Earliest"
    )
    ws = plain_socket(url + ws_path("consumer", topic, subscription) + query)
    ws.settimeout(TIMEOUT)
    wrong: list[int] = []

    def work() -> None:
        for _ in range(messages):
            frame = json.loads(ws.recv())
            payload = base64.b64decode(frame["payload"])
            if len(payload) != size:
                wrong.append(len(payload))
            ws.send(json.dumps({"messageId": frame["messageId"]}))

    run = measure("plain", messages, work)
    ws.close()
    if wrong:
        raise RuntimeError(f"plain consumer: {len(wrong)} payloads of the wrong size: {wrong[:5]}")
    return run


# rxstargate: the Producer as an Observer, observe() + acknowledger.


def produce_rx(url: str, load: Load, name: str) -> Run:
    payload, messages, window = load.payload, load.messages, load.window
    with rs.Client(url) as client:
        producer = client.topic(fresh_topic("sizes-rx")).producer(max_in_flight=window)
        producer.send(b"warm-up")  # connect outside the timing, as the plain loop does
        done = threading.Event()
        failed: list[object] = []
        producer.acks.subscribe(lambda a: a.ok or failed.append(a), on_completed=done.set)

        def work() -> None:
            rx.from_iterable([payload] * messages).subscribe(producer)
            if not done.wait(TIMEOUT):
                raise RuntimeError("rxstargate producer: acks missing after the timeout")

        run = measure(name, messages, work)
    if failed:
        raise RuntimeError(f"rxstargate producer: {len(failed)} failed acks, first {failed[0]}")
    return run


def consume_rx(url: str, topic: str, subscription: str, load: Load, name: str) -> Run:
    messages, window = load.messages, load.window
    with rs.Client(url) as client:
        done = threading.Event()
        errors: list[Exception] = []
        sink = rs.acknowledger(on_completed=done.set, on_error=errors.append)
        source = client.topic(topic).observe(
            subscription,
            subscription_type="Shared",
            max_in_flight=window,
            subscription_initial_position="Earliest",
        )
        subscriptions = []

        def work() -> None:
            subscriptions.append(source.pipe(ops.take(messages)).subscribe(sink))
            if not done.wait(TIMEOUT) or errors:
                raise RuntimeError(f"rxstargate consumer: {errors or 'timed out'}")

        run = measure(name, messages, work)
        subscriptions[0].dispose()
    if sink.acked != messages or sink.failed:
        raise RuntimeError(f"rxstargate consumer: acked {sink.acked}, failed {sink.failed}")
    return run


def fill(url: str, topic: str, load: Load) -> None:
    with rs.Client(url) as client:
        producer = client.topic(topic).producer(max_in_flight=load.window)
        rx.from_iterable([load.payload] * load.messages).subscribe(producer)
        producer.flush(TIMEOUT)


# The accelerators, switched in this process.


@contextmanager
def speedups(on: bool) -> Iterator[None]:
    """Run with the ``speedups`` extra's client accelerators on (as installed) or off."""
    decoder = _base64.use_accelerator(_base64.load_accelerator() if on else None)
    codec = _frames.use_accelerator(_frames.load_accelerator() if on else None)
    masker = _wsmask.use_accelerator(_wsmask.load_accelerator() if on else None)
    try:
        yield
    finally:
        _base64.use_accelerator(decoder)
        _frames.use_accelerator(codec)
        _wsmask.use_accelerator(masker)


def variants(choice: str) -> list[tuple[str, bool]]:
    """The rxstargate runs of a round: (name, accelerators on)."""
    installed = [
        name
        for name, on in (
            ("msgspec", _frames.load_accelerator()),
            ("pybase64", _base64.load_accelerator()),
            ("websockets' mask", _wsmask.load_accelerator()),
        )
        if on
    ]
    if not installed or choice == "off":
        return [("rxstargate (pure)", False)]
    fast = (f"rxstargate ({', '.join(installed)})", True)
    return [fast] if choice == "on" else [fast, ("rxstargate (pure)", False)]


# One size: interleaved rounds.


def load_for(size: int, args: argparse.Namespace) -> Load:
    """The payload, message count and window of one size."""
    messages = max(args.min_messages, min(args.max_messages, round(args.mb * MB / size)))
    window = max(1, min(args.window, args.window_mib * MIB // size))
    return Load(os.urandom(size), messages, window)


def interleave(rounds: int, runs: list[Callable[[int], Run]]) -> list[list[Run]]:
    """``rounds`` rounds of every run; even rounds in the order given, odd ones reversed."""
    results: list[list[Run]] = []
    for index in range(rounds):
        order = list(range(len(runs)))
        if index % 2:
            order.reverse()
        by_run: dict[int, Run] = {position: runs[position](index) for position in order}
        results.append([by_run[position] for position in range(len(runs))])
    return results


def one_size(url: str, load: Load, args: argparse.Namespace) -> dict[str, list[list[Run]]]:
    """Produce, then consume and ack, ``args.rounds`` interleaved rounds of one size."""
    kinds = variants(args.speedups)
    produce: list[Callable[[int], Run]] = [lambda _: produce_plain(url, load)]
    for name, on in kinds:
        produce.append(lambda _, name=name, on=on: _in(on, produce_rx, url, load, name))
    produced = interleave(args.rounds, produce)

    topic = fresh_topic(f"sizes-backlog-{len(load.payload)}")
    fill(url, topic, load)
    consume: list[Callable[[int], Run]] = [
        lambda index: consume_plain(url, topic, f"plain-{index}", load)
    ]
    for position, (name, on) in enumerate(kinds):
        consume.append(
            lambda index, name=name, on=on, tag=f"rx{position}": _in(
                on, consume_rx, url, topic, f"{tag}-{index}", load, name
            )
        )
    return {"produce": produced, "consume and ack": interleave(args.rounds, consume)}


def _in(on: bool, run: Callable[..., Run], *arguments: object) -> Run:
    with speedups(on):
        return run(*arguments)


# Reporting.


def mb_per_s(run: Run, size: int) -> float:
    return run.messages * size / MB / run.wall


def cpu_ms_per_mb(run: Run, size: int, process: str = "client") -> float:
    return run.processes.get(process, 0.0) * 1000 / (run.messages * size / MB)


def span(values: list[float], digits: int = 1) -> str:
    low, high = min(values), max(values)
    return (
        f"{low:.{digits}f}-{high:.{digits}f}"
        if f"{low:.{digits}f}" != f"{high:.{digits}f}"
        else f"{low:.{digits}f}"
    )


def ratios(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def print_size(size: int, window: int, results: dict[str, list[list[Run]]]) -> None:
    for operation, rounds in results.items():
        count = f"{rounds[0][0].messages:,} messages, window {window}, {len(rounds)} rounds"
        print(f"\n== {operation}, {size:,}-byte payloads ({count})")
        print(
            f"   {'':<30} {'MB/s':>11} {'msg/s':>13} {'CPU us/msg':>12} {'CPU ms/MB':>11}"
            f" {'gateway ms/MB':>14} {'broker ms/MB':>13}"
        )
        for position in range(len(rounds[0])):
            runs = [row[position] for row in rounds]
            print(
                f"   {runs[0].name:<30} {span([mb_per_s(r, size) for r in runs]):>11}"
                f" {span([r.rate for r in runs], 0):>13} {span([r.cpu_us for r in runs]):>12}"
                f" {span([cpu_ms_per_mb(r, size) for r in runs]):>11}"
                f" {span([cpu_ms_per_mb(r, size, 'gateway') for r in runs]):>14}"
                f" {span([cpu_ms_per_mb(r, size, 'broker') for r in runs]):>13}"
            )


def print_summary(sizes: list[int], results: dict[int, dict[str, list[list[Run]]]]) -> None:
    first = results[sizes[0]]["produce"][0]
    for operation in ("produce", "consume and ack"):
        for position in range(1, len(first)):
            print(
                f"\n== {operation}: {first[position].name} vs plain, by size"
                " (ranges over rounds; ratios: median of the rounds' pairs (range))"
            )
            print(
                f"   {'size':>8} {'rx MB/s':>11} {'plain MB/s':>11} {'ratio rx/plain':>20}"
                f" {'rx CPU ms/MB':>13} {'plain CPU ms/MB':>16} {'CPU plain/rx':>20}"
            )
            for size in sizes:
                rounds = results[size][operation]
                rx_runs = [row[position] for row in rounds]
                plain_runs = [row[0] for row in rounds]
                pairs = list(zip(rx_runs, plain_runs, strict=True))
                print(
                    f"   {size:>8} {span([mb_per_s(r, size) for r in rx_runs]):>11}"
                    f" {span([mb_per_s(r, size) for r in plain_runs]):>11}"
                    f" {ratios([rx.rate / plain.rate for rx, plain in pairs]):>20}"
                    f" {span([cpu_ms_per_mb(r, size) for r in rx_runs], 2):>13}"
                    f" {span([cpu_ms_per_mb(r, size) for r in plain_runs], 2):>16}"
                    f" {ratios([plain.cpu / rx.cpu for rx, plain in pairs]):>20}"
                )


def profile(url: str, load: Load, args: argparse.Namespace, prefix: str) -> None:
    """cProfile (every thread) of one rxstargate produce and one consume run of ``load``."""
    from _thread_profile import profile_threads

    topic = fresh_topic("sizes-profile")
    fill(url, topic, load)
    for name, on in variants(args.speedups):
        tag = "fast" if on else "pure"
        with speedups(on):
            with profile_threads(f"{prefix}-{tag}-produce.prof"):
                produce_rx(url, load, name)
            with profile_threads(f"{prefix}-{tag}-consume.prof"):
                consume_rx(url, topic, f"profile-{tag}", load, name)
        for operation in ("produce", "consume"):
            path = f"{prefix}-{tag}-{operation}.prof"
            count = f"{len(load.payload):,}-byte payloads, {load.messages} messages"
            print(f"\n== {name}, {operation}, {count}: {path}")
            pstats.Stats(path).sort_stats("tottime").print_stats(12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default=SIZES, help="payload sizes in bytes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mb", type=float, default=40.0, help="MB of payload a round moves")
    parser.add_argument("--min-messages", type=int, default=200)
    parser.add_argument("--max-messages", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=1000, help="most messages in flight")
    parser.add_argument("--window-mib", type=int, default=16, help="most MiB of payload in flight")
    parser.add_argument("--speedups", choices=("both", "on", "off"), default="both")
    parser.add_argument("--profile", metavar="PREFIX", help="profile the largest size instead")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with local_pulsar_urls() as (url, _):
        if args.profile:
            profile(url, load_for(max(sizes), args), args, args.profile)
            return
        produce_plain(url, Load(b"x" * 100, 2000, 1000))  # warm the gateway and the broker up
        results: dict[int, dict[str, list[list[Run]]]] = {}
        for size in sizes:
            load = load_for(size, args)
            results[size] = one_size(url, load, args)
            print_size(size, load.window, results[size])
        print_summary(sizes, results)


if __name__ == "__main__":
    main()
