"""A pipeline whose connection is reset every few tenths of a second still gets through.

Run: python benchmarks/operators_resets.py [interval_s] [messages] [work_ms] [limit_s]
(defaults: 0.7 s, 3,000 messages, 20 ms per call, 120 s). A proxy in front of local Pulsar's
gateway resets every connection each ``interval_s``; ``topic.consume(...)`` handles the
backlog at concurrency 8. Reports the time until every message was handled (and no call for
1.5 s after the resets stop), the handler calls per distinct message (goal: close to 1, and
below 1.2 at 0.5 s resets), the peak ``stats.in_flight`` (must stay within max_in_flight,
1,000) and what the subscription still holds unacked at the end.
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _client_util import fresh_topic, local_pulsar

import rxstargate as rs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' FaultProxy
from tests.faults import FaultProxy, unacked_messages

QUIET = 1.5  # seconds without a call that mean the work is done


def main() -> None:
    interval = float(sys.argv[1]) if len(sys.argv) > 1 else 0.7
    total = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    work = (float(sys.argv[3]) if len(sys.argv) > 3 else 20.0) / 1000
    limit = float(sys.argv[4]) if len(sys.argv) > 4 else 120.0
    logging.disable(logging.WARNING)  # each reset logs, and so does each lost ack
    with local_pulsar() as url:
        topic = fresh_topic("resets")
        with rs.Client(url) as direct:
            direct.topic(topic).observe("work", start="earliest").subscribe().dispose()
            with direct.topic(topic).producer() as producer:
                for i in range(total):
                    producer.send(str(i).encode())
        proxy = FaultProxy(int(url.rsplit(":", 1)[1].split("/")[0]))
        calls: collections.Counter[bytes] = collections.Counter()
        lock = threading.Lock()
        peak, last = 0, 0.0
        client = rs.Client(proxy.ws_url)

        def handler(message: rs.Message[Any]) -> None:
            nonlocal peak, last
            with lock:
                calls[message.payload] += 1
                peak = max(peak, pipeline.stats.in_flight)
                last = time.monotonic()
            time.sleep(work)

        stop = threading.Event()

        def resets() -> None:
            while not stop.wait(interval):
                proxy.reset()

        pipeline = client.topic(topic).consume("work", handler, concurrency=8, start="earliest")
        started = time.monotonic()
        pipeline.start()
        threading.Thread(target=resets, daemon=True).start()
        while time.monotonic() - started < limit:
            with lock:
                handled = len(calls)
            if handled == total and pipeline.stats.in_flight == 0:
                break
            time.sleep(0.05)
        stop.set()  # what the last reset left unacked comes back once
        while time.monotonic() - started < limit and time.monotonic() - last < QUIET:
            time.sleep(0.05)
        pipeline.stop(timeout=5)
        client.close()
        proxy.close()
        left = len(unacked_messages(url, topic, "work", "Shared"))
    with lock:
        handled, made = len(calls), sum(calls.values())
    print(
        f"resets every {interval} s: {handled:,}/{total:,} messages handled in"
        f" {last - started:.1f} s, {made / max(handled, 1):.2f} calls per message,"
        f" peak in_flight {peak:,}, {proxy.resets} resets, {left} left unacked"
    )


if __name__ == "__main__":
    main()
