"""msgspec's frame codec (the ``speedups`` extra) reads and writes frames as the pure path does.

The rule: whatever msgspec takes gives the very frame the pure path gives (same values, same
types), and whatever it refuses the pure path decides, with its own error.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rxstargate as rs
from rxstargate import _base64, _frames

pytest.importorskip("msgspec", reason="the speedups extra's frame codec (dev installs it)")
MSGSPEC = _frames.msgspec_codec()
assert MSGSPEC is not None


@contextmanager
def _codec(codec: _frames.Accelerator | None, base64_accelerator: Any = None) -> Iterator[None]:
    previous = _frames.use_accelerator(codec)
    previous_base64 = _base64.use_accelerator(base64_accelerator)
    try:
        yield
    finally:
        _frames.use_accelerator(previous)
        _base64.use_accelerator(previous_base64)


def _typed(value: Any) -> Any:
    """``value`` with the type of everything in it: 1 and True, or b"" and "", differ."""
    if isinstance(value, tuple):
        return type(value), tuple(_typed(item) for item in value)
    if isinstance(value, dict):
        return dict, tuple((_typed(k), _typed(v)) for k, v in value.items())
    return type(value), value


def _outcome(decode: Callable[[str], Any], text: str) -> Any:
    try:
        return _typed(decode(text))
    except rs.ProtocolError as exc:
        return "refused", str(exc)


def _check(
    decode: Callable[[str], Any],
    fields_of: Callable[[str], tuple[Any, ...] | None],
    frame_type: type[tuple[Any, ...]],
    text: str,
    base64_accelerator: Any = None,
) -> bool:
    """Both ways give the same frame or the same error; True when msgspec took the frame."""
    with _codec(None, base64_accelerator):
        pure = _outcome(decode, text)
    fields = fields_of(text)
    if fields is not None:
        assert _typed(tuple.__new__(frame_type, fields)) == pure
    with _codec(MSGSPEC, base64_accelerator):
        assert _outcome(decode, text) == pure
    return fields is not None


def _check_message(text: str, base64_accelerator: Any = None) -> bool:
    return _check(
        _frames.decode_message,
        MSGSPEC.message_fields,
        _frames.MessageFrame,
        text,
        base64_accelerator,
    )


def _check_ack(text: str) -> bool:
    return _check(_frames.decode_producer_ack, MSGSPEC.ack_fields, _frames.ProducerAckFrame, text)


# -- generated frames --------------------------------------------------------------------------

#: JSON tokens that are not what a field should hold, or not JSON at all.
_ODD_TOKENS = st.sampled_from(
    [
        "null", "true", "false", "0", "-0", "7", "-1", "1.0", "1e2", "1E2", "-0.0", "01", "+1",
        ".5", "NaN", "Infinity", "-Infinity", "9223372036854775807", "9223372036854775808",
        "-9223372036854775808", "-9223372036854775809", "18446744073709551616", "1" * 30,
        "1" * 5000, "[]", "[1]", "{}", '{"a":"1"}', '{"a":1}', "[" * 2000 + "]" * 2000,
        '"\\ud800"', '"\\udc00\\ud800"', '"\\ud83d\\ude00"', '"\\ud83d\\u0041"', '"\\u0041"',
        '"a\\/b"', '"\\x"', '"\t"', '"\\u00e9"', '"é"', '"\x7f"', '"\\u0000"', '""', '"', "",
    ]
)  # fmt: skip
_text_tokens = st.text(max_size=10).map(json.dumps) | st.text(max_size=10).map(
    lambda text: json.dumps(text, ensure_ascii=False)
)
_PAYLOAD_TEXTS = [
    "aGk",
    "aGk==",
    "aGk=aGk=",
    "aGl=",
    "YR==",
    "aG k=",
    "aGk=\n",
    "-_-_",
    "=",
    "=aGk",
]
_PROPERTIES = [
    "{}", '{"a":"1"}', '{"a":"1","a":"2"}', '{"b":"1","a":"2","b":"3"}', '{"a":1}', '{"a":null}',
    '{"\\ud800":"x"}', '{"a":"\\u00e9"}', "{ }", '{"a":["1"]}',
]  # fmt: skip
_good_base64 = st.binary(max_size=30).map(lambda data: json.dumps(base64.b64encode(data).decode()))
_odd_base64 = st.sampled_from(_PAYLOAD_TEXTS).map(json.dumps) | st.sampled_from(
    ['"aG\\/k"', '"aGk\\u003d"', '"\\u0061Gk="']
)
_message_ids = st.binary(min_size=1, max_size=12).map(
    lambda data: json.dumps(base64.b64encode(data).decode())
)
_good_properties = st.sampled_from(["{}", '{"a":"1","b":"x y"}']) | st.text(max_size=4).map(
    lambda text: json.dumps({text: text, "k": text})
)
#: Values of keys the client does not read: Python's json parses them all the same.
_unread = st.sampled_from(
    [
        '{"keys":{},"param":"aGk="}', "1" * 5000, "[" * 2000 + "]" * 2000, "1e999", "NaN", "-0",
        '[1,{"a":[null,true,1.5,"x"]}]', '"\\ud800"', "18446744073709551616",
    ]
)  # fmt: skip
#: Each field: what it usually holds, and what else it may. A frame has a part or two odd.
_not_str = st.sampled_from(["null", "true", "0", "1", "-1", "1.0", "[]", '["a"]', "{}"])
_odd_str = st.sampled_from(['""', '"\\ud800"', '"\\ud83d\\ude00"', '"a\\/b"', '"\\u0000"', '"\t"'])
_odd_count = st.integers(-3, 2**70).map(str) | st.sampled_from(
    ["true", "false", "null", "1.0", "1e2", "-0", "01", "+1", '"1"', "1" * 5000, "NaN"]
)
_FIELDS: dict[str, tuple[st.SearchStrategy[str], st.SearchStrategy[str]]] = {
    "messageId": (_message_ids, _not_str | _odd_str | _odd_base64 | _ODD_TOKENS),
    "payload": (_good_base64, _not_str | _odd_str | _odd_base64 | _ODD_TOKENS),
    "properties": (_good_properties, st.sampled_from(_PROPERTIES) | _not_str | _ODD_TOKENS),
    "publishTime": (_text_tokens, _not_str | _odd_str | _ODD_TOKENS),
    "redeliveryCount": (st.integers(0, 5).map(str), _odd_count | _ODD_TOKENS),
    "eventTime": (_text_tokens, _not_str | _odd_str | _ODD_TOKENS),
    "key": (_text_tokens, _not_str | _odd_str | _ODD_TOKENS),
    "topic": (_text_tokens, _not_str | _odd_str | _ODD_TOKENS),
    "encryptionContext": (_unread, _ODD_TOKENS),
}
_REQUIRED = ("messageId", "payload", "publishTime")
_space = st.sampled_from(["", " ", "\n", "\t", "\r\n"])
_odd_character = st.sampled_from(["\x0c", "\xa0", "\ufeff", "\x00", "\u2028", ",", "}"])
_KEY_SPELLINGS = {"messageId": '"message\\u0049d"', "payload": '"p\\u0061yload"'}
# Made once, not in every draw: hypothesis then checks each once.
_eighths = st.integers(0, 7)
_booleans = st.booleans()


@st.composite
def _objects(
    draw: st.DrawFn,
    fields: dict[str, tuple[st.SearchStrategy[str], st.SearchStrategy[str]]],
    usual: tuple[str, ...],
) -> str:
    """A JSON object's text: the usual keys and some others, or one missing, one twice, in
    any order, any spacing, a key spelt with escapes, a value or two odd."""
    # each other key half the time, a key the client does not read (the last one) a quarter
    names = [name for name in fields if name in usual or draw(_eighths) >= 4]
    if names[-1] == list(fields)[-1] and draw(_booleans):
        names.pop()
    if draw(_eighths) == 0:
        names.remove(draw(st.sampled_from(names)))
    if names and draw(_eighths) < 2:
        names.append(draw(st.sampled_from(names)))
    names = draw(st.permutations(names)) if draw(_booleans) else names
    odd = [draw(st.sampled_from(names))] if names and draw(_eighths) >= 2 else []
    spacing = draw(_space)  # one for the whole frame: each draw costs hypothesis a span

    def space() -> str:
        return spacing

    members = []
    for name in names:
        quoted = json.dumps(name)
        if name in _KEY_SPELLINGS and draw(_eighths) < 2:
            quoted = _KEY_SPELLINGS[name]
        value = draw(fields[name][name in odd])
        members.append(space() + quoted + space() + ":" + space() + value)
    text = space() + "{" + ",".join(members) + space() + "}" + space()
    if draw(_eighths) == 0:  # a character out of place, anywhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(_odd_character) + text[at:]
    return text


_messages = _objects(_FIELDS, (*_REQUIRED, "properties", "redeliveryCount"))


@settings(max_examples=max(100, settings.default.max_examples), deadline=None)
@given(_messages)
def test_a_message_frame_decodes_as_on_the_pure_path(text: str) -> None:
    _check_message(text)


@settings(max_examples=max(100, settings.default.max_examples), deadline=None)
@given(_messages, st.sampled_from([None, base64.b64decode]))
def test_a_long_message_frame_decodes_as_on_the_pure_path(
    text: str, base64_accelerator: Any
) -> None:
    """Long payloads, with a base64 accelerator (then the pure path reads them) or without."""
    at = text.find('"payload":"')
    if at >= 0:
        at += len('"payload":"')
        text = text[:at] + "AAAA" * (_frames._LONG_FRAME // 4) + text[at:]
    _check_message(text, base64_accelerator)


_ACK_FIELDS: dict[str, tuple[st.SearchStrategy[str], st.SearchStrategy[str]]] = {
    "result": (st.sampled_from(['"ok"', '"send-error:7"']), _not_str | _odd_str | _ODD_TOKENS),
    "messageId": (_message_ids, _not_str | _odd_str | _ODD_TOKENS),
    "context": (st.integers(0, 10**6).map(lambda n: f'"{n}"'), _not_str | _odd_str | _ODD_TOKENS),
    "errorMsg": (_text_tokens, _not_str | _odd_str | _ODD_TOKENS),
    "errorCode": (st.just("0"), _odd_count | _ODD_TOKENS),
    "schemaVersion": (st.just("0"), _odd_count | _ODD_TOKENS),
    "extra": (_unread, _ODD_TOKENS),
}


@settings(max_examples=max(100, settings.default.max_examples), deadline=None)
@given(_objects(_ACK_FIELDS, ("result", "messageId", "context")))
def test_a_producer_ack_decodes_as_on_the_pure_path(text: str) -> None:
    _check_ack(text)


# -- the traps, one by one ---------------------------------------------------------------------

_SERVERS_FRAME = {
    "messageId": "CAAQAw==",
    "payload": "aGk=",
    "properties": {"a": "1"},
    "publishTime": "2021-10-29T16:01:38.967Z",
    "redeliveryCount": 0,
}


def _message(*extra: str, **changes: Any) -> str:
    """A server's message frame with ``changes`` to its fields; ``extra`` members added as
    written."""
    text = json.dumps({**_SERVERS_FRAME, **changes}, separators=(",", ":"))
    return text[:-1] + "".join("," + member for member in extra) + "}"


#: A value of each JSON kind, as written: what a field might hold instead of what it should.
_EACH_KIND = [
    "null", "true", "false", "0", "-0", "1", "-1", "9223372036854775808", "1" * 5000, "1.0",
    "1e2", '""', '"x"', '"aGk="', '"\\ud800"', "[]", '["a"]', "{}", '{"a":"1"}', '{"a":1}',
    '{"a":null}', '{"a":{}}', "[" * 2000 + "]" * 2000,
]  # fmt: skip
_MESSAGE_KEYS = [*_SERVERS_FRAME, "eventTime", "key", "topic", "encryptionContext"]
_ACK = {"result": "ok", "messageId": "CAAQAw==", "context": "1", "errorCode": 0}
_ACK_KEYS = [*_ACK, "errorMsg", "schemaVersion", "x"]


def _with(frame: dict[str, Any], name: str, value: str) -> str:
    """``frame``'s text with ``name`` set to ``value`` (JSON text), at its place or at the end."""
    text = json.dumps({**frame, name: "@"}, separators=(",", ":"))
    return text.replace('"@"', value)


@pytest.mark.parametrize("name", _MESSAGE_KEYS)
def test_a_message_field_holding_any_kind_of_value_decodes_as_on_the_pure_path(
    name: str,
) -> None:
    for value in _EACH_KIND:
        _check_message(_with(_SERVERS_FRAME, name, value))
        _check_message(_message(f'"{name}":{value}'))  # given twice, the odd value last
        if name in _SERVERS_FRAME:  # given twice, the odd value first
            usual = json.dumps(_SERVERS_FRAME[name])
            _check_message(_with(_SERVERS_FRAME, name, value)[:-1] + f',"{name}":{usual}}}')


@pytest.mark.parametrize("name", _ACK_KEYS)
def test_an_ack_field_holding_any_kind_of_value_decodes_as_on_the_pure_path(name: str) -> None:
    for value in _EACH_KIND:
        _check_ack(_with(_ACK, name, value))


#: Frames msgspec takes (so the tests above check its reading of them, not only the fallback).
_TAKEN = {
    "as servers write them": _message(),
    "with key, eventTime and topic": _message(key="k", eventTime="2021-10-29T16:01:38Z", topic="t"),
    "with key, eventTime and topic null": _message(key=None, eventTime=None, topic=None),
    "without properties and redeliveryCount": '{"messageId":"a","payload":"","publishTime":"x"}',
    "spaced out": ' {\n "messageId" : "a",\t"payload":"aGk=" ,"publishTime":"x"\r\n}\n',
    "unused bits of the last character set": _message(payload="aGl="),
    "escapes in the payload": _message(payload="@").replace('"@"', '"aG\\/kaGk\\u003d"'),
    "a surrogate pair as escapes": _message('"key":"\\ud83d\\ude00"'),
    "non-ASCII as it is": _message(properties={"é": "😀"}),
    "a redeliveryCount of -0": _message('"redeliveryCount":-0'),
    "a redeliveryCount of 2**63 - 1": _message(redeliveryCount=2**63 - 1),
    "duplicate keys, the last counts": _message('"redeliveryCount":1', '"messageId":"b"'),
    "duplicate property keys": _message(properties=None).replace(
        '"properties":null', '"properties":{"b":"1","a":"2","b":"3"}'
    ),
    "a 100 KiB payload": _message(payload=base64.b64encode(bytes(range(256)) * 400).decode()),
}

#: Frames msgspec refuses by design, whatever the pure path says of them.
_REFUSED = {
    "an unknown key": _message('"encryptionContext":{"param":"aGk="}'),
    "an unknown key holding a 5000-digit integer": _message('"x":' + "1" * 5000),
    "an unknown key nested 2000 deep": _message('"x":' + "[" * 2000 + "]" * 2000),
    "a redeliveryCount of 2**63": _message(redeliveryCount=2**63),
    "a redeliveryCount of 5000 digits": _message('"redeliveryCount":' + "1" * 5000),
}

#: Frames msgspec may take or refuse: the outcome must be the pure path's either way.
_OTHERS = {
    "payload without padding": _message(payload="aGk"),
    "payload with padding too long": _message(payload="aGk=="),
    "payload with data after padding": _message(payload="aGk=aGk="),
    "payload of padding only": _message(payload="===="),
    "payload with a space": _message(payload="aG k="),
    "payload with a newline": _message(payload="aGk=\n"),
    "payload in the URL-safe alphabet": _message(payload="-_-_"),
    "payload null": _message(payload=None),
    "messageId empty": _message(messageId=""),
    "messageId missing": '{"payload":"aGk=","publishTime":"x"}',
    "redeliveryCount true": _message(redeliveryCount=True),
    "redeliveryCount 1.0": _message(redeliveryCount=1.0),
    "redeliveryCount 1e2": _message('"redeliveryCount":1e2'),
    "redeliveryCount a string": _message(redeliveryCount="1"),
    "redeliveryCount null": _message(redeliveryCount=None),
    "properties null": _message(properties=None),
    "properties with a number": _message(properties={"a": 1}),
    "properties with null": _message(properties={"a": None}),
    "properties an array": _message(properties=["a"]),
    "a valid duplicate after an invalid one": _message(
        '"redeliveryCount":"x"', '"redeliveryCount":1'
    ),
    "a lone surrogate escape": _message('"key":"\\ud800"'),
    "a surrogate pair the wrong way round": _message('"key":"\\udc00\\ud800"'),
    "a lone surrogate in the text itself": _message()[:-1] + ',"key":"\ud800"}',
    "NaN": _message('"redeliveryCount":NaN'),
    "a byte order mark": "\ufeff" + _message(),
    "a form feed after it": _message() + "\x0c",
    "trailing data": _message() + "{}",
    "a trailing comma": _message()[:-1] + ",}",
    "not an object": "[1]",
    "null": "null",
    "a string": '"x"',
    "nothing": "",
    "not JSON": "not json",
    "a control character in a string": _message(key="a\tb").replace("\\t", "\t"),
}  # fmt: skip


def _each_case(cases: dict[str, str], check: Callable[[str], object]) -> None:
    """``check`` every case, a failure naming its case. One test for a table, not one test item
    per row: under xdist each item costs the broker-free run a few milliseconds."""
    for name, text in cases.items():
        try:
            check(text)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc


def _taken(text: str) -> None:
    assert _check_message(text), "msgspec left it to the pure path"


def _left(text: str) -> None:
    assert not _check_message(text), "msgspec took it"


def test_msgspec_takes_well_formed_frames_and_reads_them_as_the_pure_path() -> None:
    _each_case(_TAKEN, _taken)


def test_msgspec_leaves_to_the_pure_path_what_it_might_read_differently() -> None:
    _each_case(_REFUSED, _left)


def test_odd_message_frames_decode_as_on_the_pure_path() -> None:
    _each_case(_OTHERS, _check_message)


@pytest.mark.parametrize("base64_accelerator", [None, base64.b64decode])
def test_a_long_frame_decodes_as_on_the_pure_path_with_or_without_a_base64_accelerator(
    base64_accelerator: Any,
) -> None:
    for text in (_TAKEN["a 100 KiB payload"], _message(payload="AAAA" * 25_600 + "aGk")):
        _check_message(text, base64_accelerator)


def test_frames_without_properties_get_a_dict_each() -> None:
    text = '{"messageId":"a","payload":"","publishTime":"x"}'
    with _codec(MSGSPEC):
        first, second = _frames.decode_message(text), _frames.decode_message(text)
    first.properties["changed"] = "yes"
    assert second.properties == {}


_PULSAR_ACK = '{"result":"ok","messageId":"CAAQAw==","context":"1","errorCode":0,"schemaVersion":0}'


@pytest.mark.parametrize(
    ("text", "taken"),
    [
        (_PULSAR_ACK, True),
        ('{"result":"send-error:7","errorMsg":"bad","context":"2"}', True),
        ('{"result":"ok","messageId":null,"context":null,"errorMsg":null}', True),
        ('{"result":"ok","context":"1","errorCode":18446744073709551616}', False),
        ('{"result":"ok","context":"1","extra":' + "1" * 5000 + "}", False),
        ('{"result":"ok","context":"1","errorCode":0.0}', False),
        ('{"result":"ok","context":"1","context":"2"}', True),
        ('{"result":"ok","context":1}', False),
        ('{"result":null}', False),
        ('{"context":"1"}', False),
        ('{"result":"ok","errorMsg":"\\ud800"}', False),
        ("[]", False),
    ],
)  # fmt: skip
def test_producer_acks_decode_as_on_the_pure_path(text: str, taken: bool) -> None:
    assert _check_ack(text) == taken


# -- send frames -------------------------------------------------------------------------------


def _pure_send(payload: bytes, context: str) -> str:
    with _codec(None):
        return _frames.encode_send(payload, context)


@settings(max_examples=max(200, settings.default.max_examples), deadline=None)
@given(st.binary(max_size=300), st.text(max_size=12))
def test_a_plain_send_frame_is_the_pure_path_s_text(payload: bytes, context: str) -> None:
    assert MSGSPEC.send_frame(payload, context) == _pure_send(payload, context)


#: Every ASCII character, and non-ASCII ones JSON encoders treat apart. One test, not one per
#: character: 133 test items cost the broker-free run about a second of its workers' time.
_CONTEXTS = [chr(code) for code in range(0x80)] + ["\u2028\u2029", "é", "😀", "\ufeff", "\x7f\x80"]


def test_every_ascii_character_in_a_context_is_written_as_on_the_pure_path() -> None:
    written_otherwise = [
        context
        for context in _CONTEXTS
        if MSGSPEC.send_frame(b"\x00\xff", context) != _pure_send(b"\x00\xff", context)
    ]
    assert written_otherwise == []


def test_a_context_msgspec_cannot_write_is_written_by_the_pure_path() -> None:
    assert MSGSPEC.send_frame(b"hi", "\ud800") is None
    with _codec(MSGSPEC):
        assert _frames.encode_send(b"hi", "\ud800") == _pure_send(b"hi", "\ud800")


# -- the switch --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "on"), [(None, True), ("1", True), ("0", False), (" 0\n", False)]
)
def test_rxstargate_speedups_0_turns_msgspec_off_with_pybase64(
    monkeypatch: pytest.MonkeyPatch, setting: str | None, on: bool
) -> None:
    if setting is None:
        monkeypatch.delenv("RXSTARGATE_SPEEDUPS", raising=False)
    else:
        monkeypatch.setenv("RXSTARGATE_SPEEDUPS", setting)
    assert (_frames.load_accelerator() is not None) == on
    assert _base64.speedups_wanted() == on
    if not on:
        assert _base64.load_accelerator() is None


@pytest.mark.parametrize(("setting", "on"), [("1", "True"), ("0", "False")])
def test_rxstargate_decodes_with_msgspec_from_import_unless_switched_off(
    setting: str, on: str
) -> None:
    code = "from rxstargate import _frames; print(_frames._accelerator is not None)"
    env = {**os.environ, "RXSTARGATE_SPEEDUPS": setting}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=15
    )
    assert result.stdout.strip() == on, result.stderr
