"""A model of the many-streams benchmark without sockets: what handing batches to threads costs.

Run: python benchmarks/model_thread_handover.py [--rounds 4] [--yield-first]

One thread (the I/O loop's part) makes items in turns and hands them over in lists through a
``queue.SimpleQueue`` per delivery thread (as the client hands a read's messages to a
stream's delivery thread); each item costs a few µs of Python on both sides. One delivery
thread taking lists of 300 against 100 threads taking lists of 20 (what a stream of a hundred
gets at a time in ``client_many_streams.py``); CPU of the process per item, medians of the
rounds. ``--yield-first``: a delivery thread lets the others run once (``time.sleep(0)``)
before it blocks on an empty queue.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import threading
import time
from typing import Any

TOTAL = 20_000
TURN_PAUSE = 0.001  # the loop's wait for the next bytes, between turns


def work(index: int, scratch: dict[int, Any]) -> tuple[Any, ...]:
    """A few µs of Python with allocations, as decoding or delivering a message has."""
    item = (index, str(index), b"m" * 100, {})
    scratch[index] = item
    del scratch[index]
    return item


def run(threads: int, batch: int, per_turn: int, yield_first: bool) -> float:
    """CPU µs per item with ``threads`` delivery threads fed lists of ``batch``."""
    queues: list[queue.SimpleQueue[list[int] | None]] = [
        queue.SimpleQueue() for _ in range(threads)
    ]
    left = [TOTAL]
    lock = threading.Lock()
    done = threading.Event()

    def deliver(inbox: queue.SimpleQueue[list[int] | None]) -> None:
        scratch: dict[int, Any] = {}
        while (items := inbox.get()) is not None:
            for index in items:
                work(index, scratch)
            if yield_first and inbox.empty():
                time.sleep(0)
            with lock:
                left[0] -= len(items)
                if not left[0]:
                    done.set()

    workers = [threading.Thread(target=deliver, args=(inbox,)) for inbox in queues]
    for worker in workers:
        worker.start()
    cpu = time.process_time()
    made = handed = 0
    while made < TOTAL:
        for _ in range(per_turn):
            items = [work(index, {})[0] for index in range(made, min(TOTAL, made + batch))]
            made += len(items)
            queues[handed % threads].put(items)
            handed += 1
            if made >= TOTAL:
                break
        time.sleep(TURN_PAUSE)
    if not done.wait(60):
        raise TimeoutError("the delivery threads did not finish")
    spent = time.process_time() - cpu
    for inbox in queues:
        inbox.put(None)
    for worker in workers:
        worker.join(10)
    return spent / TOTAL * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--yield-first", action="store_true")
    args = parser.parse_args()
    one: list[float] = []
    hundred: list[float] = []
    for _ in range(args.rounds):
        one.append(run(1, 300, 1, args.yield_first))
        hundred.append(run(100, 20, 15, args.yield_first))
    first, last = statistics.median(one), statistics.median(hundred)
    print(
        f"CPU per item: 1 thread, lists of 300: {min(one):.2f}-{max(one):.2f} µs;"
        f" 100 threads, lists of 20: {min(hundred):.2f}-{max(hundred):.2f} µs;"
        f" medians {first:.2f} and {last:.2f} µs, {last - first:.2f} µs more an item"
        f" ({(last - first) * 20:.0f} µs a hand-over of 20), {last / first:.2f}x"
    )


if __name__ == "__main__":
    main()
