"""Payloads decode to the same bytes, or the same refusal, with or without an accelerator."""

from __future__ import annotations

import base64
import binascii
import importlib.util
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rxstargate as rs
from rxstargate import _base64, _frames


def _whole_groups_only(text: str, validate: bool = False) -> bytes:
    """The stdlib's decoder, refusing a text that is not whole groups of four (as pybase64
    does a stray "=" that binascii's strict mode accepts)."""
    if len(text) % 4:
        raise binascii.Error("not whole groups of four")
    return base64.b64decode(text, validate=validate)


# The stdlib's decoder has pybase64's interface; pybase64 itself when installed (the
# ``speedups`` extra), so both paths run wherever the tests do.
_ACCELERATORS: list[Callable[..., bytes]] = [base64.b64decode, _whole_groups_only]
if importlib.util.find_spec("pybase64") is not None:
    import pybase64

    _ACCELERATORS.append(pybase64.b64decode)


_FRAME_CODECS = [None] if _frames.msgspec_codec() is None else [None, _frames.msgspec_codec()]

_each_accelerator = pytest.mark.parametrize(
    "accelerator", _ACCELERATORS, ids=lambda decoder: f"{decoder.__module__}.{decoder.__name__}"
)


@contextmanager
def _accelerated(accelerator: Callable[..., bytes] | None) -> Iterator[None]:
    previous = _base64.use_accelerator(accelerator)
    try:
        yield
    finally:
        _base64.use_accelerator(previous)


def _outcome(decode: Callable[[str], Any], text: str) -> Any:
    try:
        return decode(text)
    except ValueError:
        return "refused"
    except rs.ProtocolError:
        return "refused"


_odd_characters = st.sampled_from(["=", "==", "\n", " ", "-", "_", "*", "é", "A", "\x00"])


@st.composite
def _payload_texts(draw: st.DrawFn) -> str:
    """Long base64 texts, most of them valid, some with a character or two out of place."""
    # The first LONG_PAYLOAD bytes come from a drawn seed: st.binary draws each byte on its own,
    # which for a thousand of them was most of this file's CPU. The tail keeps the lengths'
    # spread; the property tests take a third more examples to find what they found before.
    prefix = draw(st.randoms(use_true_random=True)).randbytes(_base64.LONG_PAYLOAD)
    data = prefix + draw(st.binary(max_size=40))
    text = list(base64.b64encode(data).decode())
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text)))
        text[at:at] = draw(_odd_characters)
    if draw(st.booleans()):
        del text[draw(st.integers(0, len(text) - 1))]
    return "".join(text)


def _strict(text: str) -> bytes:
    return binascii.a2b_base64(text, strict_mode=True)


@_each_accelerator
@settings(max_examples=max(200, settings.default.max_examples), deadline=None)
@given(text=_payload_texts())
def test_a_long_payload_decodes_as_binascii_strict_mode_does_with_an_accelerator(
    accelerator: Callable[..., bytes], text: str
) -> None:
    with _accelerated(accelerator):
        assert _outcome(_base64.decode, text) == _outcome(_strict, text)


@_each_accelerator
@pytest.mark.parametrize("text", ["FahQ=", "aGk=aGk=", "aGk", "=aGk", "aG=k", "", "aGk="])
def test_texts_the_accelerator_refuses_still_get_binascii_s_answer(
    accelerator: Callable[..., bytes], text: str
) -> None:
    padded = "AAAA" * (_base64.LONG_PAYLOAD // 4) + text  # long enough for the accelerator
    with _accelerated(accelerator):
        assert _outcome(_base64.decode_long, padded) == _outcome(_strict, padded)
        assert _outcome(_base64.decode, text) == _outcome(_strict, text)


def test_long_payloads_go_to_the_accelerator_and_short_ones_do_not() -> None:
    texts: list[str] = []

    def recording(text: str, validate: bool = False) -> bytes:
        texts.append(text)
        return base64.b64decode(text, validate=validate)

    long_text = base64.b64encode(b"y" * _base64.LONG_PAYLOAD).decode()
    with _accelerated(recording):
        assert _base64.decode(long_text) == b"y" * _base64.LONG_PAYLOAD
        assert _base64.decode("aGk=") == b"hi"
    assert texts == [long_text]


@_each_accelerator
@settings(max_examples=max(70, settings.default.max_examples), deadline=None)
@given(text=_payload_texts(), properties=st.sampled_from([{}, {"a": "1"}]))
def test_message_frames_decode_the_same_with_and_without_the_accelerator(
    accelerator: Callable[..., bytes], text: str, properties: dict[str, str]
) -> None:
    frame = json.dumps(
        {
            "messageId": "CAAQAw==",
            "payload": text,
            "properties": properties,
            "publishTime": "2021-10-29T16:01:38.967Z",
            "redeliveryCount": 0,
        },
        separators=(",", ":"),
    )
    outcomes = []
    for codec in _FRAME_CODECS:  # the pure path, and msgspec first where it is installed
        previous = _frames.use_accelerator(codec)
        try:
            with _accelerated(accelerator):
                outcomes.append(_outcome(_frames.decode_message, frame))
            with _accelerated(None):
                outcomes.append(_outcome(_frames.decode_message, frame))
        finally:
            _frames.use_accelerator(previous)
    assert outcomes == [outcomes[0]] * len(outcomes)
