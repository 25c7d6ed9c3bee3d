"""Where a message's CPU goes in the client: each step of producing and consuming, on one thread.

Run: python benchmarks/client_cpu_parts.py [messages]

No socket, broker or thread: the steps the client's threads take for each message (reading
frames, decoding, building Messages, settling, encoding and masking frames) run one after the
other over ready-made server frames, each step over a window of 1,000 messages in turn (what
is in flight in a real run), and each step's CPU time per message is printed (best of three).
What a real run adds on top is the threads' hand-offs and wake-ups; compare with
``client_vs_native.py --threads``.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from reactivex import Observable, abc
from reactivex import operators as ops

import rxstargate as rs
from rxstargate._frames import decode_message, decode_messages, decode_producer_ack
from rxstargate._message_factory import MessageFactory
from rxstargate._produce_state import ProduceState
from rxstargate._receive_state import ConsumerState
from rxstargate._settler import Settler
from rxstargate._transport import _encode
from rxstargate._wsframes import FrameReader
from rxstargate.models import TopicName

PAYLOAD = b"x" * 100


class _Socket:
    """Collects what the client queues for its writer."""

    def __init__(self) -> None:
        self.queued: list[tuple[int, bytes | str, Any]] = []

    def send(self, text: bytes | str, urgent: bool = True, on_lost: Any = None) -> None:
        self.queued.append((1, text, on_lost))


class _Context:
    def report(self, error: Exception, log_it: bool = True) -> None:
        raise error


def _server_frames(texts: list[str], whole: bool = False) -> FrameReader:
    stream = bytearray()
    for text in texts:
        data = text.encode()
        if len(data) < 126:
            stream += bytes((0x81, len(data)))
        else:
            stream += bytes((0x81, 126)) + len(data).to_bytes(2, "big")
        stream += data
    if whole:  # fed at once, as the I/O loop feeds what it read
        reader = FrameReader(lambda _size: b"", 1 << 30)
        reader.feed(bytes(stream))
        return reader
    chunks = iter([bytes(stream[i : i + 65536]) for i in range(0, len(stream), 65536)])
    return FrameReader(lambda _size: next(chunks, b""), 1 << 30)


WINDOW = 1000


def _texts(reader: FrameReader) -> list[str]:
    """The whole data frames ``reader`` holds, read as the I/O loop reads a busy socket."""
    texts: list[str] = []
    reader.take_texts(texts)
    return texts


def _step(steps: dict[str, float], name: str, count: int, work: Callable[[], Any]) -> Any:
    """Run ``work`` (one window of ``count`` messages); add its CPU per message to ``steps``."""
    start = time.process_time()
    result = work()
    steps[name] = steps.get(name, 0.0) + (time.process_time() - start) * 1e6
    return result


def consume_steps(steps: dict[str, float], count: int) -> None:
    ids = [base64.b64encode(b"\x08\x01\x10" + i.to_bytes(3, "big")).decode() for i in range(count)]
    frames_in = _server_frames(
        [
            json.dumps(
                {
                    "messageId": message_id,
                    "payload": base64.b64encode(PAYLOAD).decode(),
                    "properties": {},
                    "publishTime": f"2026-01-01T00:00:00.{i // 20 % 1000:03d}Z",
                    "redeliveryCount": 0,
                },
                separators=(",", ":"),  # compact, as servers write them
            )
            for i, message_id in enumerate(ids)
        ],
        whole=True,
    )
    state = ConsumerState(count)
    ledger, _ = state.opened(0.0)
    socket = _Socket()
    settler = Settler(state, ledger, socket, threading.Lock(), _Context())  # type: ignore[arg-type]
    factory = MessageFactory(_Context(), TopicName.parse("t"), None)  # type: ignore[arg-type]
    # The observer a stream's delivery thread calls: what subscribe() gave the source.
    observers: list[abc.ObserverBase[Any]] = []
    source: Observable[Any] = Observable(lambda observer, _=None: observers.append(observer))
    source.pipe(ops.take(count)).subscribe(rs.acknowledger())
    deliver_to = observers[0].on_next

    texts = _step(steps, "read frames (unframe + UTF-8)", count, lambda: _texts(frames_in))
    frames = _step(
        steps,
        "decode JSON frames",
        count,  # as the client does: all at once, or one at a time when that cannot
        lambda: decode_messages(texts) or [decode_message(t) for t in texts],
    )
    messages = _step(
        steps, "build Messages", count, lambda: [factory.build(f, settler) for f in frames]
    )

    def deliver() -> None:
        for message, frame in zip(messages, frames, strict=True):
            settler.deliver(message, frame.message_id)

    _step(steps, "count delivered (credit)", count, deliver)

    def ack() -> None:
        for message in messages:
            deliver_to(message)

    _step(steps, "take() + acknowledger + settle", count, ack)
    _step(steps, "write acks (encode + mask)", count, lambda: _encode(socket.queued))


def produce_steps(steps: dict[str, float], count: int) -> None:
    state: ProduceState[None] = ProduceState(count + 1, 1 << 30)
    state.reopened()
    socket = _Socket()
    submissions = _step(
        steps,
        "number + encode send frames",
        count,
        lambda: [state.submission(PAYLOAD, None) for _ in range(count)],
    )

    def admit() -> None:
        for submission in submissions:
            state.admit(submission)
            socket.send(submission.frame)

    _step(steps, "admit (slots, pending)", count, admit)
    _step(steps, "write sends (encode + mask)", count, lambda: _encode(socket.queued))
    frames_in = _server_frames(
        [
            json.dumps({"result": "ok", "messageId": "CAEQAyAAMAE=", "context": s.context})
            for s in submissions
        ],
        whole=True,
    )

    texts = _step(steps, "read ack frames (unframe + UTF-8)", count, lambda: _texts(frames_in))
    acks = _step(steps, "decode ack frames", count, lambda: [decode_producer_ack(t) for t in texts])
    settled = _step(steps, "settle (ProducerAck)", count, lambda: [state.acked(a) for a in acks])
    _step(steps, "free slots (delivered)", count, lambda: state.delivered(settled))


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    for title, run in (("produce", produce_steps), ("consume and ack", consume_steps)):
        best: dict[str, float] = {}
        for _ in range(3):
            steps: dict[str, float] = {}
            for _ in range(count // WINDOW):
                run(steps, WINDOW)
            for name, spent in steps.items():
                best[name] = min(best.get(name, spent), spent / count)
        print(f"\n== {title}: client CPU per message by step, one thread, no socket (best of 3)")
        for name, spent in best.items():
            print(f"   {name:<36} {spent:6.2f} us")
        print(f"   {'total':<36} {sum(best.values()):6.2f} us")


if __name__ == "__main__":
    main()
