"""Per-key order across the gateway's sockets on one Key_Shared subscription while they join and
leave, as Pulsar keeps it: a key goes to another consumer only once what the first holds of it
is acknowledged, and what a departed consumer held comes before newer messages of its keys."""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import websocket

from tests.local.conftest import TIMEOUT, Raw, b64, recv_json, send_json

pytestmark = pytest.mark.integration

KEYS = 8
WINDOW = 20
POLL = 0.05  # seconds a receiver waits for a frame before it looks at its held messages


@dataclass
class Log:
    """What every socket received and acknowledged, in one order (the test's)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    events: list[tuple[str, str, str, int]] = field(default_factory=list)  # (what, who, key, seq)
    first: dict[int, str] = field(default_factory=dict)  # seq -> who had it first
    done: threading.Event = field(default_factory=threading.Event)
    expected: int = 0

    def record(self, what: str, who: str, key: str = "", seq: int = -1) -> None:
        with self.lock:
            self.events.append((what, who, key, seq))
            if what == "got":
                self.first.setdefault(seq, who)
                if len(self.first) >= self.expected:
                    self.done.set()


class Receiver:
    """A consumer socket read on a thread.

    It holds what it receives until ``release`` is set, then acknowledges it: ``slow`` messages
    one per receive attempt (a consumer slower than the others), the rest at once.
    """

    def __init__(
        self, sock: websocket.WebSocket, name: str, log: Log, *, hold: bool, slow: int = 0
    ) -> None:
        self.sock, self.name, self.log, self.slow = sock, name, log, slow
        self.held: list[tuple[str, str, int]] = []
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.closed = threading.Event()
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._read, name=f"test-{name}")
        self._thread.start()

    def _read(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # surfaced by join()
            if not self.closed.is_set():
                self.errors.append(exc)

    def _loop(self) -> None:
        self.sock.settimeout(POLL)
        deadline = time.monotonic() + TIMEOUT * 3
        while not self.log.done.is_set() and not self.closed.is_set():
            assert time.monotonic() < deadline, f"{self.name} waited too long"
            if self.release.is_set() and self.held:
                count = 1 if self.slow > 0 else len(self.held)
                for held in self.held[:count]:
                    self._ack(*held)
                del self.held[:count]
                self.slow -= count
            try:
                frame = recv_json(self.sock)
            except websocket.WebSocketTimeoutException:
                continue
            key, seq = frame["key"], int(base64.b64decode(frame["payload"]))
            self.log.record("got", self.name, key, seq)
            self.held.append((frame["messageId"], key, seq))

    def _ack(self, message_id: str, key: str, seq: int) -> None:
        self.log.record("acked", self.name, key, seq)  # before the gateway can act on it
        send_json(self.sock, {"messageId": message_id})

    def vanish(self) -> None:
        """Leave without acknowledging what it holds (the socket closes)."""
        self.closed.set()
        self.log.record("left", self.name)
        self._thread.join(TIMEOUT)
        with contextlib.suppress(OSError, websocket.WebSocketException):
            self.sock.close(timeout=2)

    def join(self) -> None:
        self._thread.join(TIMEOUT * 3)
        assert not self._thread.is_alive(), f"{self.name} did not finish"
        assert not self.errors, self.errors


def consumer(raw: Raw, topic: str, name: str, log: Log, *, hold: bool, slow: int = 0) -> Receiver:
    sock = raw.consumer(topic, "ordered", subscriptionType="Key_Shared", receiverQueueSize=WINDOW)
    return Receiver(sock, name, log, hold=hold, slow=slow)


def publish(raw: Raw, topic: str, first: int, count: int) -> None:
    """Messages ``first`` .. ``first + count - 1``, their number as payload, keyed round robin."""
    producer = raw.producer(topic)
    for seq in range(first, first + count):
        frame = {"payload": b64(str(seq).encode()), "key": f"k{seq % KEYS}", "context": str(seq)}
        send_json(producer, frame)
    for _ in range(count):
        assert recv_json(producer)["result"] == "ok"
    producer.close()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def order_faults(log: Log) -> list[str]:
    """Every way the log breaks per-key order across sockets (an empty list when it holds)."""
    faults: list[str] = []
    last_on: dict[tuple[str, str], int] = {}  # (who, key) -> last seq received there
    unacked: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    delivered: dict[str, set[int]] = defaultdict(set)
    for what, who, key, seq in log.events:
        if what == "left":
            unacked.pop(who, None)
        elif what == "acked":
            unacked[who][key].discard(seq)
        else:
            if seq < last_on.get((who, key), -1):
                faults.append(f"{who} got {key}:{seq} after {key}:{last_on[(who, key)]}")
            older = set(range(seq % KEYS, seq, KEYS))
            if not older <= delivered[key]:
                faults.append(f"{key}:{seq} went out before {sorted(older - delivered[key])}")
            for other, keys in unacked.items():
                if other != who and keys[key]:
                    faults.append(f"{who} got {key}:{seq} while {other} held {sorted(keys[key])}")
            last_on[(who, key)] = max(seq, last_on.get((who, key), -1))
            unacked[who][key].add(seq)
            delivered[key].add(seq)
    return faults


def test_a_key_moves_to_a_joining_consumer_only_once_the_first_acked_it(
    raw: Raw, topic_name: str
) -> None:
    log = Log(expected=400)
    publish(raw, topic_name, 0, 200)
    first = consumer(raw, topic_name, "first", log, hold=True, slow=3 * WINDOW)
    wait_for(lambda: len(first.held) == WINDOW, "the first consumer's window to fill")
    second = consumer(raw, topic_name, "second", log, hold=False)
    publish(raw, topic_name, 200, 200)  # dispatched with the keys split over both
    first.release.set()
    assert log.done.wait(TIMEOUT * 3), f"{len(log.first)} of 400 delivered"
    first.join()
    second.join()
    assert "second" in log.first.values()  # keys the first consumer had moved to the second
    assert order_faults(log) == []


def test_what_a_departed_consumer_held_comes_before_newer_messages_of_its_keys(
    raw: Raw, topic_name: str
) -> None:
    log = Log(expected=400)
    leaving = consumer(raw, topic_name, "leaving", log, hold=True)
    staying = consumer(raw, topic_name, "staying", log, hold=False)
    publish(raw, topic_name, 0, 400)
    wait_for(lambda: len(leaving.held) == WINDOW, "the leaving consumer's window to fill")
    leaving.vanish()
    assert log.done.wait(TIMEOUT * 3), f"{len(log.first)} of 400 delivered"
    staying.join()
    assert "staying" in log.first.values()
    assert order_faults(log) == []
