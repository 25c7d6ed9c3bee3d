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

Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import threading
import time
import uuid

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
    args = parser.parse_args()

    from rxstargate.local import LocalPulsar

    with LocalPulsar() as local:
        pid = local.gateway_pid
        assert pid is not None
        one_run(local.ws_url, pid, args, 2000, 0)  # warm up
        full: list[float] = []
        paced: list[float] = []
        for _ in range(args.rounds):
            for rate, messages, figures in (
                (0.0, args.full_messages, full),
                (args.rate, args.messages, paced),
            ):
                cost, achieved, by_thread = one_run(local.ws_url, pid, args, messages, rate)
                figures.append(cost)
                label = "full speed" if not rate else f"paced {rate:,.0f}/s"
                print(f"{label:>14}: {cost:6.1f} µs/msg at {achieved:8,.0f} msgs/s")
                if args.threads:
                    busy = sorted(by_thread.items(), key=lambda item: -item[1])
                    print(
                        "                "
                        + ", ".join(
                            f"{name} {seconds / messages * 1e6:.0f}"
                            for name, seconds in busy
                            if seconds
                        )
                    )
    full_cost, paced_cost = statistics.median(full), statistics.median(paced)
    print(f"payload={args.payload_size}B in-flight={args.in_flight} rounds={args.rounds}")
    print(f"gateway CPU per message, full speed: {full_cost:.1f} µs (median)")
    print(f"gateway CPU per message, paced {args.rate:,.0f}/s: {paced_cost:.1f} µs (median)")
    rounds = sorted(p / f for p, f in zip(paced, full, strict=True))
    print(
        f"ratio paced / full: {paced_cost / full_cost:.2f} "
        f"(by round: {rounds[0]:.2f}-{rounds[-1]:.2f})"
    )


if __name__ == "__main__":
    main()
