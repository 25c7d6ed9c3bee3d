"""Masked client frames (RFC 6455), many at a time: one random draw and one XOR per group.

A client masks every frame with a fresh random 4-byte key (RFC 6455 section 5.3). Drawing each
key with its own ``os.urandom`` call costs a system call per frame, and the call releases the
GIL, which hands it to another busy thread of the client about once per frame. Here the keys of
a whole batch come from one call, and the frames of a group (up to ``_GROUP_BYTES``) are masked
by one XOR over the group: the keystream holds each frame's repeated key under its payload and
zeros under its header, so headers pass unchanged.

A run of short ASCII text frames of one length (a consumer's acks) is masked as a block: every
frame of it has the same header and the same layout, so the run's keystream is built one
column (one byte offset, in every frame at once) at a time and its plain bytes by one join,
with no work per frame. Anything else is masked one frame at a time.

Frames of 126 bytes or more (a producer's sends) are masked by websockets' compiled
``apply_mask`` when it can be imported (the ``local`` and ``speedups`` extras install it): 15 µs
instead of 3 ms for the 700 KB frame of a 512 KiB payload. ``RXSTARGATE_SPEEDUPS=0`` turns it
off.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from itertools import compress, islice
from operator import itemgetter, ne
from typing import Any

from rxstargate._base64 import speedups_wanted

__all__ = ["Frame", "Masker", "encode_frames", "load_accelerator", "use_accelerator"]

#: Frames are masked together until a group holds this many bytes (bounds the extra copies).
_GROUP_BYTES = 1 << 16

_pack_medium = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack
#: Zeros under a header and its key, by header length (2, 4 or 10 bytes, plus the key's 4).
_ZEROS = {2: bytes(6), 4: bytes(8), 10: bytes(14)}
#: The 2-byte headers of short frames (acks, permits), by opcode and length: built once.
_SHORT_HEADERS = [[bytes((0x80 | op, 0x80 | n)) for n in range(126)] for op in range(16)]
#: Frames of one opcode and length in a row that are masked as a block; fewer, one by one.
_MIN_RUN = 8
_opcode, _data = itemgetter(0), itemgetter(1)


#: A frame to write: its opcode and unmasked data (a str is sent as UTF-8), and anything after
#: them (a writer's queue entry as it is).
Frame = tuple[int, bytes | str] | tuple[int, bytes | str, Any]

#: ``masker(data, key)``: ``data`` XORed with the 4-byte ``key`` repeated.
Masker = Callable[[bytes, bytes], bytes]

_apply_mask: Masker | None = None


def load_accelerator() -> Masker | None:
    """websockets' compiled ``apply_mask``, unless it is not installed or
    ``RXSTARGATE_SPEEDUPS=0``."""
    if not speedups_wanted():
        return None
    try:
        from websockets.speedups import apply_mask
    except ImportError:
        return None
    masker: Masker = apply_mask
    return masker


def use_accelerator(masker: Masker | None) -> Masker | None:
    """Mask frames of 126 bytes or more with ``masker`` (None: in Python); returns the previous
    one. For tests and benchmarks, which compare both ways in one process."""
    global _apply_mask
    previous = _apply_mask
    _apply_mask = masker
    return previous


def encode_frames(frames: Sequence[Frame], keys: bytes | None = None) -> bytes:
    """Masked, final client frames for ``(opcode, data, ...)`` tuples, joined in order.

    Args:
        frames: each frame's opcode and unmasked data; a str is encoded as UTF-8 and what
            follows the data is left alone, so a writer's queue is encoded as it is (no
            list of pairs made first: 0.03 us a frame).
        keys: ``4 * len(frames)`` bytes of mask keys (tests pass them); random when None.

    Example:
        >>> encode_frames([(0x1, b"hi")], keys=b"\\x00\\x00\\x00\\x01")
        b'\\x81\\x82\\x00\\x00\\x00\\x01hh'
    """
    count = len(frames)
    if not count:
        return b""
    if keys is None:
        keys = os.urandom(4 * count)
    elif len(keys) != 4 * count:
        raise ValueError(f"{count} frames need {4 * count} bytes of keys, not {len(keys)}")
    if count < _MIN_RUN or len(frames[0][1]) >= 126:  # a producer's sends: no run to look for
        return _masked_each(frames, keys)
    datas = list(map(_data, frames))
    lengths = list(map(len, datas))
    # Where each run of one length ends; in C, not a step for each frame.
    ends = list(compress(range(1, count), map(ne, lengths, islice(lengths, 1, None))))
    if 2 * len(ends) > count:  # mostly runs too short to gain anything
        return _masked_each(frames, keys)
    ends.append(count)
    out: list[bytes] = []
    start = done = 0  # ``done``: the frames before it are in ``out``
    for end in ends:
        if end - start >= _MIN_RUN and lengths[start] < 126:
            block = _masked_run(frames[start:end], datas[start:end], keys[4 * start : 4 * end])
            if block is not None:
                if done < start:
                    out.append(_masked_each(frames[done:start], keys[4 * done : 4 * start]))
                out.append(block)
                done = end
        start = end
    if done < count:
        out.append(_masked_each(frames[done:], keys[4 * done :]))
    return out[0] if len(out) == 1 else b"".join(out)


def _masked_run(frames: Sequence[Frame], texts: list[Any], keys: bytes) -> bytes | None:
    """Frames of one length under 126 masked as a block; None unless they are ASCII text (a str,
    one byte a character) of one opcode."""
    try:
        if not "".join(texts).isascii():
            return None
    except TypeError:  # some are bytes
        return None
    opcodes = set(map(_opcode, frames))
    if len(opcodes) != 1:
        return None
    length = len(texts[0])
    stride = 6 + length
    head = (_SHORT_HEADERS[opcodes.pop()][length] + bytes(4)).decode("latin-1")
    per_group = max(1, _GROUP_BYTES // stride)
    out: list[bytes] = []
    for first in range(0, len(texts), per_group):
        group = texts[first : first + per_group]
        size = stride * len(group)
        # Plain: each frame's header, four zero bytes where its key goes, its text.
        plain = (head + head.join(group)).encode("latin-1")
        # Keystream: zeros under each header, then the frame's key repeated over the key's
        # place and the payload; column ``2 + i`` of every frame holds byte ``i % 4`` of its key.
        group_keys = keys[4 * first : 4 * (first + len(group))]
        columns = [group_keys[i::4] for i in range(4)]
        stream = bytearray(size)
        for i in range(4 + length):
            stream[2 + i :: stride] = columns[i & 3]
        value = int.from_bytes(plain, "little") ^ int.from_bytes(stream, "little")
        out.append(value.to_bytes(size, "little"))
    return out[0] if len(out) == 1 else b"".join(out)


def _masked_each(frames: Sequence[Frame], keys: bytes) -> bytes:
    """Frames masked one at a time, by one XOR for each group of ``_GROUP_BYTES``."""
    out: list[bytes] = []
    plain: list[bytes] = []
    stream: list[bytes] = []
    size = 0
    short_headers, short_zeros = _SHORT_HEADERS, _ZEROS[2]
    masker = _apply_mask
    at = 0
    for frame in frames:
        opcode, data = frame[0], frame[1]
        if isinstance(data, str):
            data = data.encode()
        key = keys[at : at + 4]
        at += 4
        length = len(data)
        if length < 126:  # most frames: the header is ready, the zeros under it known
            plain += (short_headers[opcode][length], key, data)
            stream += (short_zeros, (key * (length // 4 + 1))[:length])
            size += 6 + length
        else:
            if length < 65536:
                header = _pack_medium(0x80 | opcode, 0xFE, length)
            else:
                header = _pack_long(0x80 | opcode, 0xFF, length)
            if masker is not None:  # in C, on its own: the group so far goes first
                if plain:
                    out.append(_xor(plain, stream, size))
                    plain, stream, size = [], [], 0
                out += (header, key, masker(data, key))
                continue
            plain += (header, key, data)
            stream += (_ZEROS[len(header)], (key * (length // 4 + 1))[:length])
            size += len(header) + 4 + length
        if size >= _GROUP_BYTES:
            out.append(_xor(plain, stream, size))
            plain, stream, size = [], [], 0
    if plain:
        out.append(_xor(plain, stream, size))
    return out[0] if len(out) == 1 else b"".join(out)


def _xor(plain: list[bytes], stream: list[bytes], size: int) -> bytes:
    value = int.from_bytes(b"".join(plain), "little") ^ int.from_bytes(b"".join(stream), "little")
    return value.to_bytes(size, "little")


use_accelerator(load_accelerator())
