"""Masking many client frames at once: the same bytes as one frame at a time, every size."""

from __future__ import annotations

import importlib.util
import os
import struct
from collections.abc import Callable, Iterator

import pytest

from rxstargate import _wsmask
from rxstargate._wsframes import OP_PING, OP_TEXT, FrameReader, _mask
from rxstargate._wsmask import _GROUP_BYTES, _MIN_RUN, encode_frames

_MASKERS = {"python": None, "websockets": _wsmask.load_accelerator()}


@pytest.fixture(autouse=True, params=list(_MASKERS))
def masker(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test masks long frames both ways: in Python, and by websockets' compiled mask."""
    if request.param != "python" and _MASKERS[request.param] is None:
        pytest.skip("websockets' compiled mask is not installed (the local or speedups extra)")
    previous = _wsmask.use_accelerator(_MASKERS[request.param])
    yield
    _wsmask.use_accelerator(previous)


def one_by_one(frames: list[tuple[int, bytes]], keys: bytes) -> bytes:
    """The reference: each frame's header, key and payload masked on its own (RFC 6455 5.2)."""
    out: list[bytes] = []  # joined at the end: adding to bytes copies all so far each time
    for index, (opcode, data) in enumerate(frames):
        key = keys[4 * index : 4 * index + 4]
        if len(data) < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | len(data))
        elif len(data) < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, len(data))
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, len(data))
        out.append(header + key + _mask(data, key))
    return b"".join(out)


def unmasked(data: bytes) -> list[tuple[int, bytes]]:
    """Read client frames back as a server does (the reader refuses masked frames: clear it)."""
    frames = []
    view = bytearray(data)
    while view:
        length = view[1] & 0x7F
        offset = {126: 4, 127: 10}.get(length, 2)
        if offset > 2:
            length = int.from_bytes(view[2:offset], "big")
        key = view[offset : offset + 4]
        body = bytes(b ^ key[i % 4] for i, b in enumerate(view[offset + 4 : offset + 4 + length]))
        view[1] &= 0x7F
        plain = bytes(view[:offset]) + body
        frames.append(FrameReader(_reads([plain]), 1 << 30).next_frame())
        del view[: offset + 4 + length]
    return [(frame.opcode, frame.data) for frame in frames]


def _reads(chunks: list[bytes]) -> Callable[[int], bytes]:
    left = iter(chunks)
    return lambda _size: next(left, b"")


SIZES = [0, 1, 3, 4, 5, 125, 126, 127, 65535, 65536, 70_001]


@pytest.mark.parametrize("size", SIZES)
def test_a_frame_of_each_size_is_masked_as_rfc_6455_says(size: int) -> None:
    frames = [(OP_TEXT, os.urandom(size))]
    keys = os.urandom(4)
    assert encode_frames(frames, keys) == one_by_one(frames, keys)


def test_a_batch_across_group_boundaries_equals_the_frames_one_by_one() -> None:
    sizes = [30] * 3000 + SIZES + [_GROUP_BYTES - 14, _GROUP_BYTES] + [200] * 700
    frames = [
        (OP_PING if i % 7 == 0 and s < 126 else OP_TEXT, os.urandom(s)) for i, s in enumerate(sizes)
    ]
    keys = os.urandom(4 * len(frames))
    assert encode_frames(frames, keys) == one_by_one(frames, keys)


def test_random_keys_differ_per_frame_and_unmask_to_the_data() -> None:
    frames = [(OP_TEXT, b"same payload")] * 50
    encoded = encode_frames(frames)
    assert unmasked(encoded) == frames
    size = 2 + 4 + len(b"same payload")
    keys = {encoded[i * size + 2 : i * size + 6] for i in range(50)}
    assert len(keys) > 40  # 50 draws of 32 random bits: a repeat is a 1-in-3-million event


def test_no_frames_encode_to_nothing() -> None:
    assert encode_frames([]) == b""


def test_keys_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(ValueError, match="need 8 bytes"):
        encode_frames([(OP_TEXT, b"a"), (OP_TEXT, b"b")], keys=b"1234")


def test_a_writers_queue_of_text_frames_encodes_as_their_utf8_bytes() -> None:
    texts = ['{"messageId":"CAEQAw=="}', "é" * 70, "x" * 200]
    queued = [(OP_TEXT, text, None) for text in texts]  # what a writer's queue holds
    keys = os.urandom(4 * len(texts))
    assert encode_frames(queued, keys) == one_by_one([(OP_TEXT, t.encode()) for t in texts], keys)


def _utf8(queued: list[tuple[int, str | bytes, None]]) -> list[tuple[int, bytes]]:
    return [(op, data.encode() if isinstance(data, str) else data) for op, data, _ in queued]


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 24, 37, 124, 125])
def test_a_run_of_ascii_text_frames_of_one_length_is_masked_as_one_by_one(length: int) -> None:
    texts = ["".join(chr(33 + (i * 7 + j) % 90) for j in range(length)) for i in range(40)]
    queued = [(OP_TEXT, text, None) for text in texts]
    keys = os.urandom(4 * len(queued))
    assert encode_frames(queued, keys) == one_by_one(_utf8(queued), keys)


def test_runs_mixed_with_other_frames_are_masked_as_one_by_one() -> None:
    acks = [(OP_TEXT, '{"messageId":"CAEQ%sAA=="}' % (i % 10), None) for i in range(300)]
    queued: list[tuple[int, str | bytes, None]] = (
        acks[:100]
        + [(OP_TEXT, '{"type":"permit","permitMessages":250}', None)]  # a run of one
        + acks[100 : 100 + _MIN_RUN - 1]  # a run one frame too short
        + [(OP_TEXT, "é" * 24, None)] * 20  # not ASCII: one by one
        + [(OP_TEXT, b"x" * 23, None)] * 20  # bytes: one by one
        + [(OP_PING if i % 2 else OP_TEXT, "y" * 22, None) for i in range(20)]  # two opcodes
        + acks[100:]
        + [(OP_TEXT, "z" * 200, None)] * 10  # long frames: one by one
        + [(OP_TEXT, "w" * 99, None)] * (2 * _GROUP_BYTES // 105 + 3)  # more than a group
    )
    keys = os.urandom(4 * len(queued))
    assert encode_frames(queued, keys) == one_by_one(_utf8(queued), keys)


def test_a_run_after_a_long_first_frame_is_masked_as_one_by_one() -> None:
    queued = [(OP_TEXT, "z" * 300, None)] + [(OP_TEXT, "a" * 30, None)] * 50
    keys = os.urandom(4 * len(queued))
    assert encode_frames(queued, keys) == one_by_one(_utf8(queued), keys)


def test_frames_of_ever_changing_lengths_are_masked_as_one_by_one() -> None:
    queued = [(OP_TEXT, "x" * (i % 50), None) for i in range(250)]
    keys = os.urandom(4 * len(queued))
    assert encode_frames(queued, keys) == one_by_one(_utf8(queued), keys)


@pytest.mark.parametrize(("setting", "on"), [("1", True), ("0", False)])
def test_rxstargate_speedups_0_turns_the_compiled_mask_off(
    monkeypatch: pytest.MonkeyPatch, setting: str, on: bool
) -> None:
    monkeypatch.setenv("RXSTARGATE_SPEEDUPS", setting)
    installed = importlib.util.find_spec("websockets") is not None
    assert (_wsmask.load_accelerator() is not None) == (on and installed)
