"""The I/O loop connector against real sockets: one thread for every socket, slow peers, closes."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

import rxstargate as rs
from rxstargate._config import TransportConfig
from rxstargate._ioloop import IOLoop
from rxstargate._loop_connection import LoopConnection

from .conftest import ScriptedPeer, SilentPeer, ack_every_message, drop, message_frame
from .test_receiver_component import Collector, FakeConsumer, ack_if_possible
from .test_tls_component import certificate, wss_url  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

CONFIG = TransportConfig(connect_timeout=5.0, write_timeout=0.5, close_timeout=2.0)
WAIT = 10.0


def echo(ws: ServerConnection) -> None:
    for text in ws:
        ws.send(text)


def texts_of(connection: LoopConnection, count: int) -> list[str]:
    """The next ``count`` text frames (fails the test on an early end)."""
    texts: list[str] = []
    while len(texts) < count:
        batch = connection.recv_batch()
        assert batch is not None, f"the connection ended after {len(texts)} frames"
        texts.extend(batch)
    return texts


def io_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "rxstargate-io"]


def test_one_thread_serves_every_socket_and_ends_with_the_last() -> None:
    loop = IOLoop()
    with ScriptedPeer(echo) as peer:
        connections = [loop(peer.url, CONFIG, f"s{i}") for i in range(20)]
        for index, connection in enumerate(connections):
            connection.send(f"hello {index}")
        for index, connection in enumerate(connections):
            assert texts_of(connection, 1) == [f"hello {index}"]
        assert len(io_threads()) == 1
        assert not [t for t in threading.enumerate() if t.name.startswith("rxstargate-writer")]
        for connection in connections:
            connection.close()
        for connection in connections:
            assert connection.recv_batch() is None  # the server answered the close
            connection.release()
    assert loop.thread is None
    assert io_threads() == []


def test_frames_from_many_threads_leave_in_order_per_thread() -> None:
    loop = IOLoop()
    with ScriptedPeer(echo) as peer:
        connection = loop(peer.url, CONFIG)

        def send_many(name: str) -> None:
            for index in range(300):
                connection.send(f"{name}:{index}", urgent=index % 3 == 0)

        senders = [threading.Thread(target=send_many, args=(f"t{n}",)) for n in range(4)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(WAIT)
        received = texts_of(connection, 1200)
        connection.release()
    for name in ("t0", "t1", "t2", "t3"):
        mine = [int(text.split(":")[1]) for text in received if text.startswith(name + ":")]
        assert mine == list(range(300))


def test_a_peer_that_stops_reading_drops_alone_and_its_unwritten_frames_are_reported() -> None:
    loop = IOLoop()
    lost: list[tuple[str | bytes, str]] = []
    with SilentPeer() as silent, ScriptedPeer(echo) as peer:
        # It never reads: how long it may stall before it counts as dropped does not matter.
        stuck = loop(silent.url, replace(CONFIG, write_timeout=0.1))
        healthy = loop(peer.url, CONFIG)
        big = "x" * 65536
        for _ in range(400):  # far more than the kernel's socket buffers hold
            stuck.send(big, on_lost=lambda frame, reason: lost.append((frame, reason)))
        healthy.send("still here")
        assert texts_of(healthy, 1) == ["still here"]
        with pytest.raises(rs.ConnectionClosedError, match="no write progress"):
            while stuck.recv_batch() is not None:
                pass
        assert lost and all("no write progress" in reason for _, reason in lost)
        assert all(frame is big for frame, _ in lost)
        healthy.send("and after")
        assert texts_of(healthy, 1) == ["and after"]
        stuck.release()
        healthy.release()
    assert io_threads() == []


def test_the_servers_close_frame_raises_its_code_and_reason_after_the_frames_before_it() -> None:
    def say_and_close(ws: ServerConnection) -> None:
        ws.send("first")
        ws.close(4001, "go away")

    loop = IOLoop()
    with ScriptedPeer(say_and_close) as peer:
        connection = loop(peer.url, CONFIG)
        assert texts_of(connection, 1) == ["first"]
        with pytest.raises(rs.ConnectionClosedError) as caught:
            connection.recv_batch()
        connection.release()
    assert caught.value.code == 4001
    assert "go away" in str(caught.value)


def test_pings_are_answered_by_the_loop() -> None:
    answered = threading.Event()

    def ping(ws: ServerConnection) -> None:
        if ws.ping().wait(WAIT):
            answered.set()
        ws.send("done")
        for _ in ws:
            pass

    loop = IOLoop()
    with ScriptedPeer(ping) as peer:
        connection = loop(peer.url, CONFIG)
        assert texts_of(connection, 1) == ["done"]
        assert answered.is_set()
        connection.release()


def test_delivered_frames_reach_the_callback_on_the_loop_thread_then_the_end_once() -> None:
    def three_then_wait(ws: ServerConnection) -> None:
        for index in range(3):
            ws.send(f"m{index}")
        try:
            for _ in ws:
                pass
        except ConnectionClosed:
            pass

    loop = IOLoop()
    frames: list[str] = []
    threads: set[str] = set()
    ends: list[rs.ConnectionClosedError | None] = []
    ended = threading.Event()
    with ScriptedPeer(three_then_wait) as peer:
        connection = loop(peer.url, CONFIG)

        def on_frames(texts: list[str]) -> None:
            threads.add(threading.current_thread().name)
            frames.extend(texts)
            if len(frames) == 3:
                connection.close()

        def on_end(error: rs.ConnectionClosedError | None) -> None:
            ends.append(error)
            ended.set()

        connection.deliver_to(on_frames, on_end)
        assert ended.wait(WAIT)
        connection.release()
    assert frames == ["m0", "m1", "m2"]
    assert threads == {"rxstargate-io"}
    assert ends == [None]


def test_a_dropped_socket_ends_with_a_retriable_error() -> None:
    def drop_after_hello(ws: ServerConnection) -> None:
        ws.send("hello")
        ws.recv()
        ws.socket.shutdown(2)

    loop = IOLoop()
    with ScriptedPeer(drop_after_hello) as peer:
        connection = loop(peer.url, CONFIG)
        assert texts_of(connection, 1) == ["hello"]
        connection.send("bye")
        with pytest.raises(rs.ConnectionClosedError, match="dropped") as caught:
            connection.recv_batch()
        connection.release()
    assert caught.value.retriable and caught.value.code is None


def test_a_client_on_the_loop_produces_and_closes_without_leaving_a_thread() -> None:
    with ScriptedPeer(ack_every_message) as peer, rs.Client(peer.url, connect=IOLoop()) as client:
        producer = client.topic("t").producer()
        assert all(producer.send(json.dumps(i).encode()).ok for i in range(50))
    assert io_threads() == []


def test_wss_through_the_loop(wss_url: str, certificate: tuple[Path, Path]) -> None:  # noqa: F811
    tls = rs.TlsOptions(ca_file=str(certificate[0]))
    with rs.Client(wss_url, tls=tls, connect=IOLoop()) as client:
        producer = client.topic("t").producer()
        payload = b"s" * 300_000  # many TLS records each way
        assert all(producer.send(payload).ok for _ in range(5))


def test_on_the_loop_a_consumer_has_one_thread_a_producer_none_and_both_survive_a_drop() -> None:
    consumer = FakeConsumer([message_frame(entry) for entry in range(4)])

    def first_socket_drops_after_two(ws: ServerConnection, sent: int) -> bool:
        if consumer.connections == 1 and sent == 2:
            drop(ws)
            return False
        return True

    consumer.on_connect = first_socket_drops_after_two
    producers = 0

    def serve(ws: ServerConnection) -> None:
        nonlocal producers
        path = ws.request.path if ws.request else ""
        if "/consumer/" in path:
            consumer(ws)
            return
        producers += 1
        if producers == 1:  # the first producer socket drops before its first ack
            ws.recv()
            drop(ws)
            return
        ack_every_message(ws)

    collector = Collector(ack_if_possible)
    fast = rs.Backoff(initial=0.01, cap=0.05, give_up_after=5.0)
    with (
        ScriptedPeer(serve) as peer,
        rs.Client(peer.url, connect=IOLoop(), reconnect=fast) as client,
    ):
        producer = client.topic("p").producer()
        assert producer.send(b"resent after the drop").ok
        subscription = client.topic("c").observe("s").subscribe(collector)
        entries: list[int] = []
        while 3 not in entries:  # messages of the dropped socket may be skipped, not redelivered
            entries.append(collector.items.get(timeout=WAIT).message_id.entry_id)
        threads = sorted(t.name for t in threading.enumerate() if t.name.startswith("rxstargate"))
        subscription.dispose()
    assert entries[-2:] == [2, 3]
    assert consumer.connections == 2 and producers == 2
    assert threads == ["rxstargate-delivery-c", "rxstargate-io", "rxstargate-keepalive"]
    assert io_threads() == []


def test_fragmented_and_large_messages_are_joined_whole() -> None:
    big = "b" * 300_000  # many reads

    def fragments(ws: ServerConnection) -> None:
        ws.send(iter(["frag", "mented", " message"]))
        ws.send(big)
        ws.send("after")
        for _ in ws:
            pass

    loop = IOLoop()
    with ScriptedPeer(fragments) as peer:
        connection = loop(peer.url, CONFIG)
        assert texts_of(connection, 3) == ["fragmented message", big, "after"]
        connection.release()


def test_messages_cut_across_reads_of_many_sockets_arrive_whole_each_on_its_own_socket() -> None:
    # The loop reads every socket into one buffer: a frame cut short must keep its own bytes
    # while the buffer is reused for the next read, of its socket or another.
    def pattern(name: str) -> str:
        return "".join(f"{name}:{i:07d};" for i in range(40_000))  # 480 KB, none alike

    def own_message(ws: ServerConnection) -> None:
        ws.send(pattern(ws.recv()))  # the name the client sends first
        for _ in ws:
            pass

    loop = IOLoop()
    with ScriptedPeer(own_message) as peer:
        connections = [loop(peer.url, CONFIG, f"s{i}") for i in range(4)]
        for index, connection in enumerate(connections):
            connection.send(f"s{index}")
        for index, connection in enumerate(connections):
            assert texts_of(connection, 1) == [pattern(f"s{index}")]
        for connection in connections:
            connection.release()


class _IdleLoop:
    """A loop that never runs: the test takes the batches by hand."""

    def flush_soon(self, io: object, urgent: bool) -> None:
        pass

    def call_soon(self, function: object) -> None:
        pass

    def release(self, io: object) -> None:
        pass


def test_large_frames_are_encoded_for_writing_a_bounded_share_at_a_time() -> None:
    import socket

    from rxstargate import _loop_connection

    ours, theirs = socket.socketpair()
    with ours, theirs:
        connection = LoopConnection(ours, "ws://test", CONFIG, _IdleLoop())  # type: ignore[arg-type]
        frames = [f"{i:04d}".ljust(300_000, "x") for i in range(10)]
        for frame in frames:  # lazy: an urgent frame on an idle socket is written through
            connection.send(frame, urgent=False)
        taken: list[str] = []
        while True:
            batch, closes = connection.take_batch()
            if not batch:
                break
            assert not closes
            sizes = [len(text) for _, text, _ in batch]
            assert sum(sizes[:-1]) < _loop_connection._WRITE_CHUNK
            taken.extend(str(text) for _, text, _ in batch)
        assert taken == frames
        small = [f"ack {i}" for i in range(100)]
        for frame in small:
            connection.send(frame, urgent=False)
        batch, _ = connection.take_batch()
        assert [text for _, text, _ in batch] == small  # small frames still leave together
