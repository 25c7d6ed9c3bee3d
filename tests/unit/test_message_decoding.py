"""Message frames decode the same through the shortcut for the usual shape as through JSON,
and through msgspec (the ``speedups`` extra) when it is installed."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rxstargate as rs
from rxstargate import _frames
from rxstargate.testing._wire import message_frame

# The pure path always; msgspec's codec too where it is installed (dev installs it).
_CODECS: list[_frames.Accelerator | None] = [None]
if _frames.msgspec_codec() is not None:
    _CODECS.append(_frames.msgspec_codec())
_each_codec = pytest.mark.parametrize(
    "codec", _CODECS, ids=lambda codec: "pure" if codec is None else "msgspec"
)


#: Examples a developer's run gives each codec of the two searches run on both (200 in all, as
#: when there was one path; CI's thorough profile gives each codec its 1,000).
_PER_CODEC = 200 // len(_CODECS)


@contextmanager
def _decoding_with(codec: _frames.Accelerator | None) -> Iterator[None]:
    previous = _frames.use_accelerator(codec)
    try:
        yield
    finally:
        _frames.use_accelerator(previous)


_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(['a"b', "a\\b", "tab\there", "é", "\x00", "2021-10-29T16:01:38.967Z", ""]),
)
_base64 = st.one_of(
    st.binary(max_size=20).map(lambda data: base64.b64encode(data).decode()),
    st.sampled_from(["aGk", "aGk==", "aGk=aGk=", "***", "=", "CAAQAw=="]),
)
_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**12),
    _text,
    _base64,
    st.dictionaries(_text, st.one_of(_text, st.integers()), max_size=3),
)
_optional = st.one_of(st.just(None), _value)
# Each field's strategy is made once, not in every draw: hypothesis then checks it once.
_message_id = st.one_of(_base64, _value)
_payload = st.one_of(_base64, _value)
_properties_value = st.one_of(st.dictionaries(_text, _text, max_size=3), st.just({}), _value)
_publish_time = st.one_of(_text, _value)
_redelivery_count = st.one_of(st.integers(0, 5), _value)


@st.composite
def _usual_frames(draw: st.DrawFn) -> dict[str, Any]:
    """Frames in the order Pulsar writes fields, mostly well formed, some not."""
    frame: dict[str, Any] = {
        "messageId": draw(_message_id),
        "payload": draw(_payload),
        "properties": draw(_properties_value),
        "publishTime": draw(_publish_time),
        "redeliveryCount": draw(_redelivery_count),
    }
    for name in ("eventTime", "key", "topic", "extra"):
        value = draw(_optional)
        if value is not None or draw(st.booleans()):
            frame[name] = value
    if draw(st.booleans()):
        frame = dict(reversed(list(frame.items())))
    return frame


def _outcome(decode: Any, text: str) -> Any:
    try:
        return decode(text)
    except rs.ProtocolError:
        return "refused"


@_each_codec
@settings(max_examples=max(_PER_CODEC, settings.default.max_examples), deadline=None)
@given(_usual_frames(), st.booleans(), st.booleans())
def test_the_usual_frame_shortcut_decodes_exactly_as_json_does(
    codec: _frames.Accelerator | None, frame: dict[str, Any], ascii_only: bool, long: bool
) -> None:
    if long and type(frame["payload"]) is str:
        frame["payload"] = "AAAA" * (_frames._LONG_FRAME // 4) + frame["payload"]
    text = json.dumps(frame, separators=(",", ":"), ensure_ascii=ascii_only)
    with _decoding_with(codec):
        decoded = _outcome(_frames.decode_message, text)
    assert decoded == _outcome(_frames._decode_any_message, text)


@_each_codec
def test_frames_as_servers_write_them_take_the_shortcut(
    codec: _frames.Accelerator | None,
) -> None:
    frames = [
        message_frame("CAAQAw==", b"hi", {}, 1_700_000_000_000, 0),
        message_frame(
            "CAAQAw==",
            b"",
            {"a": "1", "b": "x y"},
            1_700_000_000_000,
            3,
            event_time=1_600_000_000_000,
            key="k",
            topic="persistent://public/default/t",
        ),
    ]
    frames.append(message_frame("CAAQAw==", b"y" * 4000, {"a": "1"}, 1_700_000_000_000, 0))
    for text in frames:
        assert _frames._USUAL_MESSAGE(text) is not None
        if codec is not None:
            assert codec.message_fields(text) is not None
        with _decoding_with(codec):
            assert _frames.decode_message(text) == _frames._decode_any_message(text)


_raw = st.one_of(
    st.text(max_size=8),
    st.sampled_from(['"', "\\", '\\"', "\\u0041", "\x00", "\x1f", "\n", "é", "CAAQAw=="]),
)
_number = st.sampled_from(["0", "7", "01", "-0", "-1", "1e2", "1.0", "00", "1" * 10, "", "x"])


_properties = st.sampled_from(["{}", '{"a":"1"}', '{"a":"1","a":"2"}', '{"a":1}', "{ }", "[]"]) | (
    _raw.map(lambda raw: '{"' + raw + '":"' + raw + '"}')
)
#: Each part of a hand-written frame: its usual text, and what else it may be.
_PARTS = {
    "messageId": ("CAAQAw==", _raw),
    "payload": ("aGk=", _raw | _base64),
    "properties": ("{}", _properties),
    "publishTime": ("2021-10-29T16:01:38.967Z", _raw),
    "redeliveryCount": ("0", _number),
    "eventTime": ("", _raw),
    "key": ("", _raw),
    "topic": ("", _raw),
    "end": ("}", st.sampled_from(["} ", "}}", "", ",}"])),
}
_odd_parts = st.lists(st.sampled_from(list(_PARTS)), min_size=1, max_size=2)


@st.composite
def _written_frames(draw: st.DrawFn) -> str:
    """Frame texts written by hand, as a server might: mostly usual, with a part or two odd
    (unescaped characters, numbers JSON does not allow, strings where objects go)."""
    parts = {name: usual for name, (usual, _) in _PARTS.items()}
    for name in draw(_odd_parts):
        parts[name] = draw(_PARTS[name][1])
    if draw(st.booleans()):  # a long frame, read around its payload
        parts["payload"] = "AAAA" * (_frames._LONG_FRAME // 4) + parts["payload"]
    text = (
        '{"messageId":"' + parts["messageId"] + '","payload":"' + parts["payload"] + '"'
        ',"properties":' + parts["properties"] + ',"publishTime":"' + parts["publishTime"] + '"'
        ',"redeliveryCount":' + parts["redeliveryCount"]
    )
    for name in ("eventTime", "key", "topic"):
        if parts[name] or draw(st.booleans()):
            text += ',"' + name + '":"' + parts[name] + '"'
    return text + parts["end"]


@_each_codec
@settings(max_examples=max(_PER_CODEC, settings.default.max_examples), deadline=None)
@given(_written_frames())
def test_the_shortcut_takes_hand_written_frames_exactly_as_json_does(
    codec: _frames.Accelerator | None, text: str
) -> None:
    with _decoding_with(codec):
        decoded = _outcome(_frames.decode_message, text)
    assert decoded == _outcome(_frames._decode_any_message, text)


_READ = [
    message_frame("CAAQAw==", b"hi", {}, 1_700_000_000_000, 0),
    message_frame("CAAQBA==", b"x" * 100, {"a": "1", "b": "\u00e9"}, 1_700_000_000_001, 2),
    message_frame("CAAQBQ==", b"", {}, 1_700_000_000_002, 0, event_time=5, key="k", topic="t"),
]


@_each_codec
def test_a_reads_frames_decoded_at_once_are_the_frames_each_decodes_to(
    codec: _frames.Accelerator | None,
) -> None:
    with _decoding_with(codec):
        one_by_one = [_frames.decode_message(text) for text in _READ]
        at_once = _frames.decode_messages(_READ)
    if codec is None:
        assert at_once is None  # the pure path decodes them one at a time
    else:
        assert at_once == one_by_one
        assert [type(frame) for frame in at_once] == [_frames.MessageFrame] * len(_READ)
        assert [[type(field) for field in frame] for frame in at_once] == [
            [type(field) for field in frame] for frame in one_by_one
        ]


@pytest.mark.parametrize(
    "odd",
    [
        _READ[0][:-1] + ',"unknown":1}',  # msgspec refuses, the pure path takes it
        "not json",
        message_frame("CAAQAw==", b"x" * 2000, {}, 1_700_000_000_000, 0),  # a long frame
    ],
    ids=["unknown-key", "not-json", "long"],
)
def test_a_read_holding_a_frame_msgspec_refuses_or_a_long_one_is_decoded_frame_by_frame(
    odd: str,
) -> None:
    codec = _frames.msgspec_codec()
    if codec is None:
        pytest.skip("msgspec is not installed")
    with _decoding_with(codec):
        assert _frames.decode_messages([_READ[0], odd, _READ[1]]) is None
        assert _frames.decode_messages([]) == []
