"""The frame reader's shortcut for whole final frames reads what the full parser reads."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxstargate._wsframes import Frame, FrameError, FrameReader


def server_frame(opcode: int, data: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    first = (0x80 if fin else 0) | rsv | opcode
    if len(data) < 126:
        return struct.pack("!BB", first, len(data)) + data
    if len(data) < 65536:
        return struct.pack("!BBH", first, 126, len(data)) + data
    return struct.pack("!BBQ", first, 127, len(data)) + data


_frame = st.one_of(
    st.tuples(st.sampled_from([0x1, 0x2]), st.binary(max_size=300), st.just(True)),
    st.tuples(st.just(0x9), st.binary(max_size=20), st.just(True)),  # ping
    st.tuples(st.just(0x1), st.binary(max_size=200), st.just(False)),  # a first fragment
    st.tuples(st.just(0x0), st.binary(max_size=200), st.booleans()),  # a continuation
)


def _read_all(stream: bytes, cuts: list[int], max_size: int, shortcut: bool) -> list[Frame | str]:
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    left = iter(chunks)
    reader = FrameReader(lambda _size: next(left, b""), max_size)
    if not shortcut:
        reader._buffered_final_frame = lambda: None  # type: ignore[method-assign]
    out: list[Frame | str] = []
    while True:
        try:
            out.append(reader.next_frame())
        except EOFError:
            return out
        except FrameError as exc:
            return [*out, f"FrameError: {exc}"]


@settings(max_examples=max(150, settings.default.max_examples), deadline=None)
@given(st.lists(_frame, max_size=12), st.data(), st.sampled_from([64, 250, 10_000]))
def test_the_shortcut_reads_every_stream_as_the_full_parser_does(
    frames: list[tuple[int, bytes, bool]], data: Any, max_size: int
) -> None:
    stream = b"".join(server_frame(opcode, body, fin) for opcode, body, fin in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6, unique=True)))
    assert _read_all(stream, cuts, max_size, True) == _read_all(stream, cuts, max_size, False)


@pytest.mark.parametrize(
    ("stream", "error"),
    [
        (server_frame(0x1, b"x" * 101), "over 100 bytes"),
        (server_frame(0x1, b"hi", rsv=0x40), "reserved bits"),
        (bytes([0x81, 0x82, 0, 0, 0, 0]) + b"hi", "masked"),
        (server_frame(0x1, b"a", fin=False) + server_frame(0x1, b"b"), "inside another"),
    ],
)
def test_frames_the_shortcut_leaves_alone_still_fail_as_they_should(
    stream: bytes, error: str
) -> None:
    assert _read_all(stream, [], 100, True)[-1] == _read_all(stream, [], 100, False)[-1]
    assert error in str(_read_all(stream, [], 100, True)[-1])


def test_a_frame_of_exactly_the_size_cap_is_read() -> None:
    body = b"y" * 300
    assert _read_all(server_frame(0x1, body), [1, 3], 300, True) == [Frame(0x1, body)]


class _NoMore(Exception):
    pass


def _no_more(size: int) -> bytes:
    raise _NoMore()


def _as_read(item: Frame | str) -> Any:
    """A frame as a reader of text sees it: the text of a data frame, else the frame."""
    if isinstance(item, Frame) and item.opcode in (0x1, 0x2):
        return item.data.decode("utf-8", "replace")
    return item


def _read_fed(stream: bytes, cuts: list[int], max_size: int) -> list[Any]:
    """Read as the I/O loop does: feed each chunk, take the whole data frames, then the rest."""
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    reader = FrameReader(_no_more, max_size)
    out: list[Any] = []
    for chunk in chunks:
        reader.feed(chunk)
        while True:
            texts: list[str] = []
            reader.take_texts(texts)
            out += texts
            try:
                out.append(_as_read(reader.next_frame()))
            except _NoMore:
                break
            except FrameError as exc:
                return [*out, f"FrameError: {exc}"]
    return out


_long_frame = st.tuples(
    st.sampled_from([0x1, 0x2]), st.binary(min_size=60, max_size=300), st.just(True)
)


@settings(max_examples=max(150, settings.default.max_examples), deadline=None)
@given(
    st.lists(st.one_of(_frame, _long_frame), max_size=12),
    st.data(),
    st.sampled_from([64, 250, 10_000]),
    st.booleans(),
)
def test_taking_whole_texts_in_one_pass_reads_every_stream_as_the_full_parser_does(
    frames: list[tuple[int, bytes, bool]], data: Any, max_size: int, utf8: bool
) -> None:
    if utf8:  # valid UTF-8 (as servers send text), else any bytes
        frames = [(op, body.decode("latin-1").encode(), fin) for op, body, fin in frames]
    stream = b"".join(server_frame(opcode, body, fin) for opcode, body, fin in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6, unique=True)))
    expected = [_as_read(item) for item in _read_all(stream, [], max_size, False)]
    assert _read_fed(stream, cuts, max_size) == expected
