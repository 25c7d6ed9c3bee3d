"""CPU of the process() stage alone, on one thread, with no socket, broker or other thread.

Run: python benchmarks/operators_stage_cpu.py [messages]

Ready-made Messages (100 B payloads) go through ``process(fn)`` at its defaults (a plain
handler at concurrency 1, the stage a bridge uses) into an observer that does nothing, and
through ``ops.map(fn)`` the same way; each is timed with this thread's CPU time, best of seven
rounds of ``messages`` (default 200,000). The difference is the stage's own cost a message:
what ``operators_cpu.py`` and ``operators_bridge.py`` measure with everything else around it,
at a precision a busy machine leaves them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import reactivex as rx
from reactivex import operators as ops

import rxstargate as rs
import rxstargate.operators as rso

ROUNDS = 7
WINDOW = 1000  # distinct messages, reused: what is in flight in a real run


def best_us(stage: Callable[[Any], Any], messages: list[rs.Message[bytes]], total: int) -> float:
    """The best of ROUNDS: this thread's CPU µs a message through ``stage``."""
    best = float("inf")
    for _ in range(ROUNDS):
        source = rx.from_iterable(messages * (total // len(messages)))
        started = time.thread_time()
        source.pipe(stage).subscribe(lambda _: None)
        best = min(best, (time.thread_time() - started) / total * 1e6)
    return best


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    topic = rs.TopicName.parse("bench-stage")
    messages = [
        rs.Message(topic=topic, payload=b"b" * 100, message_id=rs.MessageId.from_parts(1, index))
        for index in range(WINDOW)
    ]

    def payload(message: rs.Message[bytes]) -> bytes:
        return message.payload

    plain = best_us(ops.map(payload), messages, total)
    staged = best_us(rso.process(payload), messages, total)
    print(f"== the process() stage alone ({total} messages, one thread, best of {ROUNDS})")
    print(f"   ops.map(fn)    {plain:6.3f} us CPU/msg")
    print(f"   process(fn)    {staged:6.3f} us CPU/msg")
    print(f"   the stage's own cost: {staged - plain:.3f} us a message")


if __name__ == "__main__":
    main()
