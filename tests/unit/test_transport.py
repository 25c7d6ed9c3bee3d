"""The socket's writer and frame reader without a network: ordering, timeouts, lost frames."""

from __future__ import annotations

import os
import struct
import threading
import time

import pytest

from rxstargate._config import TransportConfig
from rxstargate._transport import Connection
from rxstargate._wsframes import OP_CLOSE, OP_PING, OP_TEXT, FrameError, FrameReader, encode_frame
from rxstargate.exceptions import ConnectionClosedError, StargateConnectionError

WAIT = 10.0


def server_frame(opcode: int, data: bytes, fin: bool = True) -> bytes:
    """An unmasked frame as a server sends it."""
    first = (0x80 if fin else 0) | opcode
    if len(data) < 126:
        return struct.pack("!BB", first, len(data)) + data
    return struct.pack("!BBH", first, 126, len(data)) + data


def unmask(frame: bytes) -> tuple[int, bytes]:
    """Opcode and payload of one masked client frame."""
    length = frame[1] & 0x7F
    offset = 2
    if length == 126:
        length = struct.unpack_from("!H", frame, 2)[0]
        offset = 4
    key = frame[offset : offset + 4]
    body = frame[offset + 4 : offset + 4 + length]
    return frame[0] & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(body))


def split_frames(data: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while data:
        length = data[1] & 0x7F
        offset = 4 if length == 126 else 2
        if length == 126:
            length = struct.unpack_from("!H", data, 2)[0]
        size = offset + 4 + length
        frames.append(unmask(data[:size]))
        data = data[size:]
    return frames


class FakeSocket:
    """Records what is written; ``stalled`` makes every send time out; reads come from a list."""

    def __init__(self, incoming: bytes = b"", stalled: bool = False) -> None:
        self.written = bytearray()
        self.stalled = stalled
        self.incoming = bytearray(incoming)
        self.shut = threading.Event()
        self.lock = threading.Lock()

    def send(self, data: memoryview) -> int:
        if self.shut.is_set():
            raise OSError("socket shut down")
        if self.stalled:
            time.sleep(0.01)
            raise TimeoutError("timed out")
        with self.lock:
            self.written += bytes(data)
        return len(data)

    def recv(self, size: int) -> bytes:
        if self.incoming:
            chunk = bytes(self.incoming[:size])
            del self.incoming[:size]
            return chunk
        if self.shut.wait(0.05):
            return b""
        raise TimeoutError("timed out")

    def shutdown(self, how: int) -> None:
        self.shut.set()

    def close(self) -> None:
        self.shut.set()


def test_frames_from_many_threads_leave_in_order_per_thread() -> None:
    sock = FakeSocket()
    conn = Connection(sock, "ws://test", TransportConfig(), "test")

    def send_many(tag: str) -> None:
        for i in range(200):
            conn.send(f"{tag}{i}", urgent=i % 2 == 0)

    threads = [threading.Thread(target=send_many, args=(t,), name="test") for t in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    conn.close()
    assert conn.wait_written(time.monotonic() + WAIT)
    frames = split_frames(bytes(sock.written))
    assert frames[-1][0] == OP_CLOSE
    texts = [data.decode() for op, data in frames if op == OP_TEXT]
    for tag in "abcd":
        assert [t for t in texts if t[0] == tag] == [f"{tag}{i}" for i in range(200)]
    conn.release()


def test_a_stalled_peer_drops_the_connection_and_reports_every_unwritten_frame() -> None:
    sock = FakeSocket(stalled=True)
    conn = Connection(sock, "ws://test", TransportConfig(write_timeout=0.05), "test")
    lost: list[str] = []
    for i in range(5):
        conn.send(f"ack{i}", urgent=False, on_lost=lambda frame, reason: lost.append(frame))
    with pytest.raises(ConnectionClosedError, match="no write progress"):
        conn.recv()
    conn.release()
    assert sorted(lost) == ["ack0", "ack1", "ack2", "ack3", "ack4"]
    with pytest.raises(StargateConnectionError):
        conn.send("after")


def test_abort_reports_queued_frames_once_and_returns_at_once() -> None:
    sock = FakeSocket(stalled=True)
    conn = Connection(sock, "ws://test", TransportConfig(write_timeout=30.0), "test")
    lost: list[str | bytes] = []
    for i in range(3):
        conn.send(f"{i}", urgent=False, on_lost=lambda frame, reason: lost.append(frame))
    conn.abort()  # the writer is stuck in a send: abort must not wait for it
    conn.release()
    assert len(lost) == 3
    assert sorted(lost) == ["0", "1", "2"]  # each reported with its own frame


def test_recv_answers_pings_and_returns_text_in_batches() -> None:
    incoming = (
        server_frame(OP_PING, b"p")
        + server_frame(OP_TEXT, b"one")
        + server_frame(OP_TEXT, b"two")
        + server_frame(OP_CLOSE, (1000).to_bytes(2, "big"))
    )
    sock = FakeSocket(incoming)
    conn = Connection(sock, "ws://test", TransportConfig(), "test")
    assert conn.recv_batch() == ["one", "two"]
    with pytest.raises(ConnectionClosedError) as caught:
        conn.recv_batch()
    assert caught.value.code == 1000
    conn.wait_written(time.monotonic() + WAIT)
    conn.release()
    written = split_frames(bytes(sock.written))
    assert written[0] == (0xA, b"p")  # the pong
    assert written[-1] == (OP_CLOSE, (1000).to_bytes(2, "big"))


def test_the_frame_reader_joins_fragments_and_caps_messages() -> None:
    data = server_frame(OP_TEXT, b"ab", fin=False) + server_frame(0, b"cd")
    chunks = [bytes([b]) for b in data]  # one byte at a time, with timeouts between

    def read(size: int) -> bytes:
        if not chunks:
            return b""
        return chunks.pop(0)

    reader = FrameReader(read, 1024)
    frame = reader.next_frame()
    assert (frame.opcode, frame.data) == (OP_TEXT, b"abcd")
    big = FrameReader(lambda n: server_frame(OP_TEXT, os.urandom(300)), 100)
    with pytest.raises(FrameError, match="over 100 bytes"):
        big.next_frame()
    masked = bytes([0x81, 0x80 | 1, 0, 0, 0, 0, 0x41])
    with pytest.raises(FrameError, match="masked"):
        FrameReader(lambda n: masked, 100).next_frame()


def test_client_frames_are_masked_and_round_trip() -> None:
    for size in (0, 5, 125, 126, 70_000):
        payload = os.urandom(size)
        frame = encode_frame(OP_TEXT, payload)
        assert frame[1] & 0x80
        if size < 126:
            assert unmask(frame) == (OP_TEXT, payload)
