"""The gateway's CPU per message at full speed and paced at a steady modest rate, in one run.

One producer socket and one consumer socket (push mode, every message acked) on a fresh topic,
driven by websocket-client loops in this process; the gateway runs in its own process and its
CPU time (every thread: the event loop, receive threads and the broker client's threads) is
read from ``/proc`` over the time the messages take to go through. Each round runs full speed
(at most ``--in-flight`` unacknowledged sends) and then paced at ``--rate`` messages per second;
the figures are µs of gateway CPU per message (produced and consumed), the median over rounds,
and the ratio paced / full (of the medians, and its range over rounds). On a busy machine the
paced figure varies most: a starved gateway falls behind and then works in batches.
``--threads`` also prints where the CPU went, by thread (``loop`` is the event loop's; the
others are the broker client's and the consumer socket's receive thread).

    python benchmarks/gateway_paced.py --rate 2000 --messages 10000 --rounds 5

The same run measures the floor: the official client alone (``_native_paced.py``), in a process
of its own straight to the broker, producing, consuming and acking the same messages paced and
at full speed. ``--gateway`` adds gateways of other code (or other loops) on the same broker,
run interleaved with the first, to compare changes side by side:

    python benchmarks/gateway_paced.py --gateway "before=../old-checkout" \\
        --gateway "plain-loop=.:/path/to/venv/bin/python --loop asyncio"

Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import websocket
from _client_util import pid_cpu
from gateway_produce import drive

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def threads_cpu(pid: int) -> dict[str, float]:
    """CPU seconds by thread (``loop`` for the main thread, else its name and id), with the
    system time of each under its name and ``:sys``."""
    by_name: dict[str, float] = collections.defaultdict(float)
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                head, _, tail = stat.read().rpartition(")")
        except FileNotFoundError:
            continue  # ended meanwhile
        fields = tail.split()
        name = "loop" if int(tid) == pid else f"{head.partition('(')[2]}-{tid}"
        by_name[name] += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        by_name[f"{name}:sys"] += int(fields[12]) / CLOCK_TICKS
    return by_name


class Consumer:
    """A consumer socket that acks every message; ``wait`` returns once ``expected`` arrived."""

    def __init__(self, url: str, expected: int) -> None:
        self._sock = websocket.create_connection(url, timeout=60)
        self._expected = expected
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-consumer")
        self._thread.start()

    def _run(self) -> None:
        recv, send = self._sock.recv, self._sock.send
        for _ in range(self._expected):
            frame = json.loads(recv())
            send(f'{{"messageId":"{frame["messageId"]}"}}')
        self.done.set()

    def close(self) -> None:
        self._thread.join(60)
        self._sock.close()


def one_run(
    ws_url: str, pid: int, args: argparse.Namespace, messages: int, rate: float
) -> tuple[float, float, dict[str, float]]:
    """Gateway CPU µs per message, the rate achieved, and CPU by thread name (seconds)."""
    topic = f"persistent/public/default/paced-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(f"{ws_url}/ws/v2/consumer/{topic}/bench", messages)
    time.sleep(0.2)  # let the subscription settle before counting
    threads_before, before, start = threads_cpu(pid), pid_cpu(pid), time.perf_counter()
    drive(f"{ws_url}/ws/v2/producer/{topic}", messages, args.payload_size, args.in_flight, rate)
    if not consumer.done.wait(60):
        raise SystemExit("the consumer did not get every message within 60 s")
    elapsed = time.perf_counter() - start
    cpu, threads_after = pid_cpu(pid) - before, threads_cpu(pid)
    consumer.close()
    by_thread = {
        name: cpu_after - threads_before.get(name, 0.0) for name, cpu_after in threads_after.items()
    }
    return cpu / messages * 1e6, messages / elapsed, by_thread


class NativeBaseline:
    """The official client alone in a process of its own (``_native_paced.py``): the floor."""

    def __init__(self, broker_url: str, args: argparse.Namespace) -> None:
        worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_native_paced.py")
        self._process = subprocess.Popen(
            [sys.executable, worker, broker_url, str(args.payload_size), str(args.in_flight)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _ask(self, command: str) -> str:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline()
        if not answer:
            raise SystemExit(f"the native baseline ended at {command!r}")
        return answer

    def run(self, consume: str, messages: int, rate: float) -> tuple[float, float]:
        """CPU µs per message of the native process and the rate achieved."""
        self._ask(f"prepare {consume}")
        time.sleep(0.2)  # as for the gateway: let the subscription settle
        before = pid_cpu(self._process.pid)
        elapsed = float(self._ask(f"run {rate} {messages}").split()[1])
        cpu = pid_cpu(self._process.pid) - before
        return cpu / messages * 1e6, messages / elapsed

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


@contextlib.contextmanager
def extra_gateway(spec: str, broker_url: str) -> Iterator[tuple[str, str, int]]:
    """A gateway of other code on the same broker: ``LABEL=SOURCE_DIR[:PYTHON] [ARGUMENTS]``
    (its arguments are the gateway process's, such as ``--loop asyncio``).

    Yields its label, WebSocket URL and pid.
    """
    where, *arguments = spec.split()
    label, _, rest = where.partition("=")
    source, _, python = rest.partition(":")
    env = {**os.environ, "PYTHONPATH": os.path.abspath(source)}
    process = subprocess.Popen(
        [python or sys.executable, "-m", "rxstargate.local._serve", broker_url, "0", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if line[:1] != ["LISTENING"]:
            raise SystemExit(f"the gateway {label} did not start")
        yield label, f"ws://127.0.0.1:{line[1]}", process.pid
    finally:
        process.terminate()
        process.wait(30)


def print_threads(by_thread: dict[str, float], messages: int) -> None:
    busy = sorted(by_thread.items(), key=lambda item: -item[1])
    print(
        "                "
        + ", ".join(f"{name} {seconds / messages * 1e6:.0f}" for name, seconds in busy if seconds)
    )


def summary(label: str, rate: float, full: list[float], paced: list[float]) -> None:
    full_cost, paced_cost = statistics.median(full), statistics.median(paced)
    rounds = sorted(p / f for p, f in zip(paced, full, strict=True))
    print(
        f"{label:<26} full speed {min(full):6.1f}-{max(full):6.1f} µs (median {full_cost:6.1f}), "
        f"paced {rate:,.0f}/s {min(paced):6.1f}-{max(paced):6.1f} µs (median {paced_cost:6.1f}); "
        f"paced / full {paced_cost / full_cost:.2f} (by round {rounds[0]:.2f}-{rounds[-1]:.2f})"
    )


def main() -> None:
    """Run the rounds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="paced msgs/s")
    parser.add_argument("--messages", type=int, default=10_000, help="per paced run")
    parser.add_argument("--full-messages", type=int, default=20_000, help="per full-speed run")
    parser.add_argument("--payload-size", type=int, default=100)
    parser.add_argument("--in-flight", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", action="store_true", help="print CPU by thread name")
    parser.add_argument(
        "--native",
        default="receive,listener",
        help="official-client baselines to run: receive, listener (comma-separated; none: '')",
    )
    parser.add_argument(
        "--gateway",
        action="append",
        default=[],
        metavar="'LABEL=SOURCE_DIR[:PYTHON] [ARGUMENTS]'",
        help="also run a gateway of the code in SOURCE_DIR (run by PYTHON, given ARGUMENTS, "
        "such as --loop asyncio) on the same broker; repeat for more",
    )
    args = parser.parse_args()

    from rxstargate.local import LocalPulsar

    with LocalPulsar() as local, contextlib.ExitStack() as stack:
        pid = local.gateway_pid
        assert pid is not None
        gateways = [("gateway", local.ws_url, pid)]
        gateways += [stack.enter_context(extra_gateway(g, local.broker_url)) for g in args.gateway]
        native = NativeBaseline(local.broker_url, args)
        stack.callback(native.close)
        natives = [mode for mode in args.native.split(",") if mode]
        figures: dict[str, tuple[list[float], list[float]]] = {}
        for _, url, gateway_pid in gateways:
            one_run(url, gateway_pid, args, 2000, 0)  # warm up
        for mode in natives:
            native.run(mode, 2000, 0)
        for _ in range(args.rounds):
            for rate, messages, slot in (
                (0.0, args.full_messages, 0),
                (args.rate, args.messages, 1),
            ):
                kind = "full speed" if not rate else f"paced {rate:,.0f}/s"
                for label, url, gateway_pid in gateways:
                    cost, achieved, by_thread = one_run(url, gateway_pid, args, messages, rate)
                    figures.setdefault(label, ([], []))[slot].append(cost)
                    print(f"{label:>22} {kind:>14}: {cost:6.1f} µs/msg at {achieved:8,.0f} msgs/s")
                    if args.threads:
                        print_threads(by_thread, messages)
                for mode in natives:
                    cost, achieved = native.run(mode, messages, rate)
                    label = f"official client, {mode}"
                    figures.setdefault(label, ([], []))[slot].append(cost)
                    print(f"{label:>22} {kind:>14}: {cost:6.1f} µs/msg at {achieved:8,.0f} msgs/s")
    print(
        f"payload={args.payload_size}B in-flight={args.in_flight} rounds={args.rounds} "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print("CPU per message (produced, consumed and acked) of each process, range over rounds:")
    for label, (full, paced) in figures.items():
        summary(label, args.rate, full, paced)
    gateway_full, gateway_paced = map(statistics.median, figures["gateway"])
    for mode in natives:
        native_full, native_paced = map(statistics.median, figures[f"official client, {mode}"])
        over_full, over_paced = gateway_full - native_full, gateway_paced - native_paced
        print(
            f"gateway paced / official client ({mode}) paced: "
            f"{gateway_paced / native_paced:.2f}; the gateway's cost over it: "
            f"{over_full:.0f} µs at full speed, {over_paced:.0f} µs paced "
            f"({over_paced / over_full:.2f}x)"
        )


if __name__ == "__main__":
    main()
