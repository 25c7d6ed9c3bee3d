"""Urgent frames a caller writes to its socket itself, and how the loop's writes keep order."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.server import ServerConnection

import rxstargate as rs
from rxstargate._config import TransportConfig
from rxstargate._ioloop import IOLoop
from rxstargate._loop_connection import LoopConnection
from rxstargate._loop_socket import LoopSocket

from .conftest import ScriptedPeer, ack_every_message
from .test_tls_component import certificate, wss_url  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

CONFIG = TransportConfig(connect_timeout=5.0, write_timeout=5.0, close_timeout=2.0)
WAIT = 10.0


class HandLoop:
    """A loop that never runs by itself: the test writes the queue by hand."""

    def __init__(self) -> None:
        self.flushes = 0
        self.urgent: list[bool] = []  # what each flush_soon asked for

    def flush_soon(self, io: object, urgent: bool) -> None:
        self.flushes += 1
        self.urgent.append(urgent)

    def call_soon(self, call: object) -> None:
        pass

    def release(self, io: object) -> None:
        pass


@contextmanager
def on_socketpair() -> Iterator[tuple[LoopConnection, HandLoop, socket.socket]]:
    """A connection on one end of a plain socket pair; the other end is the test's peer."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(WAIT)
    loop = HandLoop()
    with ours, theirs:
        yield LoopConnection(ours, "ws://test", CONFIG, loop), loop, theirs  # type: ignore[arg-type]


def client_frames(data: bytes) -> list[bytes]:
    """The payloads of masked client frames that ``data`` holds, whole."""
    frames, at = [], 0
    while at < len(data):
        length, at = data[at + 1] & 0x7F, at + 2
        if length == 126:
            length, at = int.from_bytes(data[at : at + 2], "big"), at + 2
        elif length == 127:
            length, at = int.from_bytes(data[at : at + 8], "big"), at + 8
        key, at = data[at : at + 4], at + 4
        payload = data[at : at + length]
        assert len(payload) == length, "a frame was cut short"
        repeated = (key * (length // 4 + 1))[:length]
        unmasked = int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")
        frames.append(unmasked.to_bytes(length, "little"))
        at += length
    return frames


def waiting(peer: socket.socket) -> bytes:
    """What the peer can read without waiting."""
    peer.setblocking(False)
    data = b""
    try:
        while chunk := peer.recv(1 << 20):
            data += chunk
    except BlockingIOError:
        pass
    finally:
        peer.settimeout(WAIT)
    return data


def test_an_urgent_frame_on_an_idle_socket_leaves_from_the_senders_thread() -> None:
    with on_socketpair() as (connection, loop, peer):
        connection.send("first")
        assert client_frames(peer.recv(100)) == [b"first"]
        assert loop.flushes == 0  # the loop was not needed


def test_a_frame_sent_before_the_server_answered_the_last_waits_for_the_loop() -> None:
    with on_socketpair() as (connection, loop, peer):
        connection.send("request")
        assert client_frames(peer.recv(100)) == [b"request"]
        connection.send("pipelined")
        assert waiting(peer) == b""
        assert loop.flushes == 1
        connection.io.flush()
        assert client_frames(peer.recv(100)) == [b"pipelined"]
        connection.seen()  # the server answered
        connection.send("next request")
        assert client_frames(peer.recv(100)) == [b"next request"]
        assert loop.flushes == 1


def test_lazy_frames_are_left_to_the_loop() -> None:
    with on_socketpair() as (connection, _loop, peer):
        connection.send("ack", urgent=False)
        assert waiting(peer) == b""
        connection.io.flush()
        assert client_frames(peer.recv(100)) == [b"ack"]


def test_what_a_partial_write_left_goes_before_any_later_frame() -> None:
    with on_socketpair() as (connection, loop, peer):
        big = "b" * (2 << 20)  # more than a socket pair's buffers hold
        connection.send(big)
        assert connection.io.writing  # the rest is the loop's
        assert loop.flushes == 1
        connection.seen()
        connection.send("after")  # must not overtake the rest of the big one
        expected = (14 + len(big)) + (6 + len("after"))  # headers: length and mask
        received = b""
        for _ in range(100_000):
            received += waiting(peer)
            if len(received) >= expected:
                break
            connection.io.flush()
        assert client_frames(received) == [big.encode(), b"after"]


def test_a_socket_that_takes_nothing_leaves_the_whole_frame_to_the_loop() -> None:
    with on_socketpair() as (connection, loop, peer):
        filler = 0
        with pytest.raises(BlockingIOError):
            while True:  # fill the socket's buffers
                filler += connection.io.sock.send(b"\0" * 65536)
        lost: list[tuple[str | bytes, str]] = []
        connection.send("blocked", on_lost=lambda frame, reason: lost.append((frame, reason)))
        assert connection.io.writing
        assert loop.flushes == 1
        received = b""
        for _ in range(100_000):
            received += waiting(peer)
            if len(received) >= filler + 6 + len("blocked"):
                break
            connection.io.flush()
        assert client_frames(received[filler:]) == [b"blocked"]
        assert lost == []


def test_a_failed_write_through_is_reported_lost_by_the_loop() -> None:
    lost: list[tuple[str | bytes, str]] = []
    with on_socketpair() as (connection, _loop, peer):
        peer.close()
        with pytest.raises(BrokenPipeError):
            while True:  # until the kernel tells the pipe is broken
                connection.io.sock.send(b"\0")
        connection.send("gone", on_lost=lambda frame, reason: lost.append((frame, reason)))
        assert not lost
        connection.io.flush()  # the loop meets the error again
        assert len(lost) == 1 and "write to ws://test failed" in lost[0][1]
        assert lost[0][0] == "gone"
        assert connection.closed


@pytest.fixture
def write_throughs(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """The thread of each frame written through."""
    threads: list[threading.Thread] = []
    original = LoopSocket.write_through

    def recorded(io: LoopSocket, item: Any) -> None:
        threads.append(threading.current_thread())
        original(io, item)

    monkeypatch.setattr(LoopSocket, "write_through", recorded)
    return threads


def test_a_blocking_send_is_written_by_the_senders_thread(
    write_throughs: list[threading.Thread],
) -> None:
    with ScriptedPeer(ack_every_message) as peer, rs.Client(peer.url, connect=IOLoop()) as client:
        producer = client.topic("t").producer()
        assert all(producer.send(b"%d" % i).ok for i in range(20))
    assert len(write_throughs) == 20
    assert set(write_throughs) == {threading.main_thread()}


def test_a_tls_socket_is_never_written_through(
    wss_url: str,  # noqa: F811
    certificate: tuple[Path, Path],  # noqa: F811
    write_throughs: list[threading.Thread],
) -> None:
    tls = rs.TlsOptions(ca_file=str(certificate[0]))
    with rs.Client(wss_url, tls=tls, connect=IOLoop()) as client:
        producer = client.topic("t").producer()
        assert all(producer.send(b"%d" % i).ok for i in range(20))
    assert write_throughs == []


def echo(ws: ServerConnection) -> None:
    for text in ws:
        ws.send(text)


def echoes(connection: LoopConnection) -> list[str]:
    """Every frame echoed until the connection ends."""
    texts: list[str] = []
    while (batch := connection.recv_batch()) is not None:
        texts.extend(batch)
    return texts


def test_senders_written_through_and_frames_the_loop_writes_keep_their_order(
    write_throughs: list[threading.Thread],
) -> None:
    loop = IOLoop()
    with ScriptedPeer(echo) as peer:
        connection = loop(peer.url, CONFIG)
        answered = [threading.Event() for _ in range(200)]

        def request_and_wait() -> None:  # written through whenever nothing else is queued
            for index, event in enumerate(answered):
                connection.send(f"r:{index}")
                assert event.wait(WAIT)

        def send_many(name: str, urgent_every: int) -> None:
            for index in range(300):
                connection.send(f"{name}:{index}", urgent=index % urgent_every != 0)

        senders = [threading.Thread(target=send_many, args=(f"t{n}", 2 + n)) for n in range(3)]
        senders.append(threading.Thread(target=request_and_wait))
        for sender in senders:
            sender.start()
        received: list[str] = []
        while len(received) < 1100:
            batch = connection.recv_batch()
            assert batch is not None, f"the connection ended after {len(received)} frames"
            received.extend(batch)
            for text in batch:
                if text.startswith("r:"):
                    answered[int(text[2:])].set()
        for sender in senders:
            sender.join(WAIT)
        connection.release()
    for name, count in (("t0", 300), ("t1", 300), ("t2", 300), ("r", 200)):
        mine = [int(text.split(":")[1]) for text in received if text.startswith(name + ":")]
        assert mine == list(range(count))
    assert write_throughs  # requests went straight from their sender


def test_a_close_racing_senders_comes_after_every_frame_accepted() -> None:
    stored: list[str] = []

    def record(ws: ServerConnection) -> None:
        for text in ws:
            stored.append(str(text))
            if len(stored) <= 200:  # answered: the senders may write through
                ws.send(text)

    loop = IOLoop()
    with ScriptedPeer(record) as peer:
        connection = loop(peer.url, CONFIG)
        accepted: list[list[str]] = [[] for _ in range(3)]
        started = threading.Barrier(4)

        def send_until_closed(mine: list[str], name: str) -> None:
            started.wait(WAIT)
            for index in range(5000):
                try:
                    connection.send(f"{name}:{index}")
                except rs.StargateConnectionError:
                    return
                mine.append(f"{name}:{index}")

        senders = [
            threading.Thread(target=send_until_closed, args=(accepted[n], f"t{n}"))
            for n in range(3)
        ]
        for sender in senders:
            sender.start()
        started.wait(WAIT)
        answers = 0
        while answers < 200:  # then the server answers no more, and the senders go on
            batch = connection.recv_batch()
            assert batch is not None, f"the connection ended after {answers} answers"
            answers += len(batch)
        connection.close()
        for sender in senders:
            sender.join(WAIT)
        echoes(connection)
        connection.release()
    assert sorted(stored) == sorted(text for mine in accepted for text in mine)
    for n, mine in enumerate(accepted):
        assert [text for text in stored if text.startswith(f"t{n}:")] == mine


def test_a_release_racing_a_sender_ends_it_with_a_connection_error() -> None:
    loop = IOLoop()
    outcome: list[BaseException] = []
    with ScriptedPeer(echo) as peer:
        connection = loop(peer.url, CONFIG)
        sent = threading.Semaphore(0)

        def send_until_released() -> None:
            try:
                while True:
                    connection.send("x" * 1000)
                    sent.release()
            except Exception as exc:
                outcome.append(exc)

        sender = threading.Thread(target=send_until_released)
        sender.start()
        for _ in range(200):
            assert sent.acquire(timeout=WAIT)
        connection.release()
        sender.join(WAIT)
    assert not sender.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], rs.StargateConnectionError)
    assert connection.io.released.is_set()


def test_a_full_batch_of_lazy_frames_tells_the_loop_once_until_it_takes_them() -> None:
    from rxstargate._loop_connection import _MAX_BATCH

    with on_socketpair() as (connection, loop, _):
        for index in range(_MAX_BATCH + 100):
            connection.send(f"ack {index}", urgent=False)
        # Within the linger time for the first, at once when the batch is full; the frames
        # queued after that need no word to the loop.
        assert loop.urgent == [False, True]
        batch, closes = connection.take_batch()
        assert [text for _, text, _ in batch] == [f"ack {i}" for i in range(_MAX_BATCH + 100)]
        assert not closes
        connection.send("ack after", urgent=False)
        assert loop.urgent == [False, True, False]
