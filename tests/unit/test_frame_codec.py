"""The cheap paths of the frame codec give what the general JSON codec gives, on any input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxstargate import _frames
from rxstargate.exceptions import ProtocolError

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
_around = st.sampled_from(["", " ", "\n", "\t ", "x", "}", ",1", "\ufeff"])


@settings(max_examples=max(150, settings.default.max_examples), deadline=None)
@given(_json_values, _around, _around, st.sampled_from([None, 1]))
def test_frames_parse_as_json_loads_parses_them(
    value: Any, before: str, after: str, indent: int | None
) -> None:
    text = before + json.dumps(value, indent=indent) + after
    try:
        expected: Any = json.loads(text)
    except ValueError:
        with pytest.raises(ProtocolError, match="not JSON"):
            _frames._parse(text)
        return
    assert _frames._parse(text) == expected


@pytest.mark.parametrize("text", ["", "{", '{"a":1}{', "[1,]", "nan1", '"\\ud800'])
def test_broken_json_is_a_protocol_error(text: str) -> None:
    with pytest.raises(ProtocolError, match="not JSON"):
        _frames._parse(text)


def _general_send(payload: bytes, context: str) -> str:
    """What the general encoder writes for a frame with a payload and a context only."""
    import binascii

    encoded = binascii.b2a_base64(payload, newline=False).decode("ascii")
    return json.dumps(
        {"payload": encoded, "context": context}, ensure_ascii=False, separators=(",", ":")
    )


@settings(max_examples=max(100, settings.default.max_examples), deadline=None)
@given(st.binary(max_size=40), st.text(max_size=8))
def test_a_plain_send_frame_is_the_text_the_general_encoder_writes(
    payload: bytes, context: str
) -> None:
    assert _frames.encode_send(payload, context) == _general_send(payload, context)


@settings(max_examples=max(100, settings.default.max_examples), deadline=None)
@given(st.text(max_size=12))
def test_ack_and_nack_frames_are_the_text_json_dumps_writes(message_id: str) -> None:
    quoted = json.dumps(message_id)
    assert _frames.encode_ack(message_id) == '{"messageId":' + quoted + "}"
    assert (
        _frames.encode_nack(message_id)
        == '{"type":"negativeAcknowledge","messageId":' + quoted + "}"
    )
