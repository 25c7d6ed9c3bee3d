"""WebSocket framing (RFC 6455) for an open socket: masked client frames out, server frames in.

websocket-client does the handshake (TLS, proxies, headers); after it, rxstargate reads and
writes frames itself so that reading never waits for a writer, frames are capped in size, and
many small frames leave in one system call.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import NamedTuple

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Frame",
    "FrameError",
    "FrameReader",
    "encode_frame",
]

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_CONTROL = frozenset({OP_CLOSE, OP_PING, OP_PONG})
_DATA = frozenset({OP_CONT, OP_TEXT, OP_BINARY})


class FrameError(Exception):
    """The server broke the framing rules, or sent a message over the size cap."""


class Frame(NamedTuple):
    """One complete message (continuations joined) or control frame."""

    opcode: int
    data: bytes


def _mask(data: bytes, key: bytes) -> bytes:
    length = len(data)
    if not length:
        return data
    repeated = (key * (length // 4 + 1))[:length]
    masked = int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")
    return masked.to_bytes(length, "little")


def encode_frame(opcode: int, data: bytes) -> bytes:
    """One masked, final client frame.

    Example:
        >>> frame = encode_frame(OP_TEXT, b"hi")
        >>> frame[0], frame[1] & 0x7F, len(frame)
        (129, 2, 8)
    """
    length = len(data)
    first = 0x80 | opcode
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    key = os.urandom(4)
    return header + key + _mask(data, key)


class FrameReader:
    """Parses server frames from ``read(n)`` chunks; at most ``max_size`` bytes per message.

    ``read`` returns some bytes (up to n), ``b""`` at end of stream, or raises (a timeout may
    be raised and the call repeated: the reader keeps its partial state).
    """

    def __init__(self, read: Callable[[int], bytes], max_size: int) -> None:
        self._read = read
        self._max_size = max_size
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self._fragment_size = 0

    @property
    def buffered(self) -> int:
        """Bytes read and not yet taken as frames."""
        return len(self._buffer)

    def has_frame(self) -> bool:
        """True when a whole frame is already read (the next one needs no socket read)."""
        buffer = self._buffer
        size = len(buffer)
        if size < 2:
            return False
        length = buffer[1] & 0x7F
        if length == 126:
            return size >= 4 and size >= 4 + struct.unpack_from("!H", buffer, 2)[0]
        if length == 127:
            return size >= 10 and size >= 10 + struct.unpack_from("!Q", buffer, 2)[0]
        return size >= 2 + length

    def feed(self, data: bytes | memoryview) -> None:
        """Add bytes read by the caller (a reader whose ``read`` has nothing more to give)."""
        self._buffer += data

    def take_texts(self, texts: list[str]) -> None:
        """Move the whole final text and binary frames at the front of the buffer to ``texts``.

        The common case of a busy socket, in one pass: decoded as UTF-8 (errors replaced) and
        cut from the buffer once, not frame by frame. It stops at anything else (a control
        frame, a fragment, a long or oversized frame, a frame not read whole), which
        :meth:`next_frame` then reads and checks.
        """
        buffer = self._buffer
        if self._fragments:
            return
        size, offset, max_size = len(buffer), 0, self._max_size
        while offset + 2 <= size:
            first, length = buffer[offset], buffer[offset + 1]
            if first != 0x81 and first != 0x82:  # FIN, no reserved bits, text or binary
                break
            if length < 126:  # the mask bit is clear too
                start = offset + 2
            elif length == 126 and offset + 4 <= size:
                start = offset + 4
                length = (buffer[offset + 2] << 8) | buffer[offset + 3]
            else:
                break
            end = start + length
            if end > size or length > max_size:
                break
            texts.append(buffer[start:end].decode("utf-8", "replace"))
            offset = end
        if offset:
            del buffer[:offset]

    def _buffered_final_frame(self) -> Frame | None:
        """The common case, cheaply: a whole final text or binary frame already read, with no
        message in fragments; None for anything else (``next_frame`` then checks it all)."""
        buffer = self._buffer
        size = len(buffer)
        if size < 2 or self._fragments:
            return None
        first, length = buffer[0], buffer[1]
        if first != 0x81 and first != 0x82:  # FIN, no reserved bits, text or binary
            return None
        if length < 126:  # the mask bit is clear too
            offset = 2
        elif length == 126 and size >= 4:
            offset = 4
            length = (buffer[2] << 8) | buffer[3]
        else:
            return None
        end = offset + length
        if size < end or length > self._max_size:
            return None
        data = bytes(buffer[offset:end])
        del buffer[:end]
        return Frame(first & 0x0F, data)

    def _fill(self, count: int) -> None:
        while len(self._buffer) < count:
            chunk = self._read(max(65536, count - len(self._buffer)))
            if not chunk:
                raise EOFError("the server closed the connection")
            self._buffer += chunk

    def next_frame(self) -> Frame:
        """The next complete message or control frame.

        Raises:
            FrameError: on a protocol violation or an oversized message.
            EOFError: when the stream ended.
        """
        frame = self._buffered_final_frame()
        if frame is not None:
            return frame
        while True:
            self._fill(2)
            first, second = self._buffer[0], self._buffer[1]
            if second & 0x80:
                raise FrameError("the server sent a masked frame")
            if first & 0x70:
                raise FrameError("the server set reserved bits (no extension was agreed)")
            opcode = first & 0x0F
            fin = bool(first & 0x80)
            length = second & 0x7F
            offset = 2
            if length == 126:
                self._fill(4)
                length = struct.unpack_from("!H", self._buffer, 2)[0]
                offset = 4
            elif length == 127:
                self._fill(10)
                length = struct.unpack_from("!Q", self._buffer, 2)[0]
                offset = 10
            if opcode in _CONTROL:
                if length > 125 or not fin:
                    raise FrameError("the server sent a bad control frame")
            elif opcode not in _DATA:
                raise FrameError(f"the server sent an unknown opcode {opcode}")
            if self._fragment_size + length > self._max_size:
                raise FrameError(
                    f"the server sent a message over {self._max_size} bytes"
                    f" ({self._fragment_size + length} bytes or more)"
                )
            self._fill(offset + length)
            data = bytes(self._buffer[offset : offset + length])
            del self._buffer[: offset + length]
            if opcode in _CONTROL:
                return Frame(opcode, data)
            if opcode == OP_CONT:
                if not self._fragments:
                    raise FrameError("the server sent a continuation with nothing to continue")
            elif self._fragments:
                raise FrameError("the server started a message inside another")
            else:
                self._fragment_opcode = opcode
            if fin and not self._fragments:
                return Frame(opcode, data)
            self._fragments.append(data)
            self._fragment_size += length
            if fin:
                whole = b"".join(self._fragments)
                self._fragments = []
                self._fragment_size = 0
                return Frame(self._fragment_opcode, whole)
