"""The JSON frames of Pulsar's WebSocket API: marshmallow schemas and a fast codec with their rules.

The schemas (``unknown = EXCLUDE``, so frames from newer servers with new keys still load) are
the specification. Decoding every received frame through marshmallow costs about 20 us per
message, so :func:`decode_message` and :func:`decode_producer_ack` take a fast manual path
that accepts exactly what the schemas accept (a unit test checks both agree) and fall back to
the schema only to explain a frame that the fast path refused. A message frame of the shape
servers write (compact, fields in Pulsar's order, no escapes) is read by one regular
expression before that, with the same result as JSON (unit tests check both ways agree).

With the ``speedups`` extra, msgspec (:mod:`rxstargate._fastframes`) tries each message and ack
frame first, and writes plain send frames; what it refuses takes the path above, which alone
decides what is refused and why (unit tests check both give the same frames).
``RXSTARGATE_SPEEDUPS=0`` turns it off.
"""

from __future__ import annotations

import binascii
import functools
import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from rxstargate import _base64
from rxstargate.exceptions import ProtocolError

__all__ = [
    "ConsumerMessageSchema",
    "MessageFrame",
    "ProducerAckFrame",
    "ProducerAckSchema",
    "decode_message",
    "decode_messages",
    "decode_producer_ack",
    "encode_ack",
    "encode_nack",
    "encode_permit",
    "encode_send",
    "load_accelerator",
    "msgspec_codec",
    "use_accelerator",
]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_loads = json.loads
#: The JSON scanner behind ``json.loads``, called directly: ``loads`` spends as long again
#: on type checks and two whitespace searches around it. Anything unusual goes to ``loads``.
_decoder: Any = json.JSONDecoder()
_scan: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once
#: A str as a JSON string literal: as ``_dumps`` writes it (non-ASCII kept) and as
#: ``json.dumps`` does (non-ASCII escaped). Both are C functions.
_quoted: Callable[[str], str] = json.encoder.encode_basestring
_quoted_ascii: Callable[[str], str] = json.encoder.encode_basestring_ascii


class _Base64(fields.Field[bytes]):
    """Standard base64, strict (what Java's basic decoder accepts)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bytes:
        if not isinstance(value, str):
            raise ValidationError("Not a valid string.")
        try:
            return _base64.decode(value)
        except ValueError:  # binascii.Error is one
            raise ValidationError("Not valid base64.") from None


class ConsumerMessageSchema(Schema):
    """A message pushed to a consumer or reader."""

    class Meta:
        unknown = EXCLUDE

    messageId = fields.String(required=True, validate=validate.Length(min=1))
    payload = _Base64(required=True)
    properties = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    publishTime = fields.String(required=True)
    redeliveryCount = fields.Integer(strict=True, load_default=0)
    eventTime = fields.String(load_default=None, allow_none=True)
    key = fields.String(load_default=None, allow_none=True)
    topic = fields.String(load_default=None, allow_none=True)


class ProducerAckSchema(Schema):
    """The server's answer to one sent message."""

    class Meta:
        unknown = EXCLUDE

    result = fields.String(required=True)
    messageId = fields.String(load_default=None, allow_none=True)
    context = fields.String(load_default=None, allow_none=True)
    errorMsg = fields.String(load_default=None, allow_none=True)


_MESSAGE_SCHEMA = ConsumerMessageSchema()
_ACK_SCHEMA = ProducerAckSchema()


class MessageFrame(NamedTuple):
    """A decoded consumer/reader message frame (times still as wire strings).

    A named tuple, not a frozen dataclass: one is built per message and a frozen dataclass's
    ``__init__`` costs several times more.
    """

    message_id: str
    payload: bytes
    properties: dict[str, str]
    publish_time: str
    redelivery_count: int
    event_time: str | None
    key: str | None
    topic: str | None = None  # multi-topic streams, where the server names it


class ProducerAckFrame(NamedTuple):
    """A decoded producer ack frame."""

    result: str
    message_id: str | None
    context: str | None
    error_msg: str | None


#: A string that JSON takes as it is written: no quote, backslash (escape) or control character.
_PLAIN = r'[^"\\\x00-\x1f]*'
_USUAL_HEAD = r'\{"messageId":"([A-Za-z0-9+/=]+)","payload":"'
_USUAL_TAIL = (
    rf'","properties":(\{{(?:"{_PLAIN}":"{_PLAIN}"(?:,"{_PLAIN}":"{_PLAIN}")*)?\}})'
    rf',"publishTime":"({_PLAIN})","redeliveryCount":(0|[1-9][0-9]{{0,8}})'
    rf'(?:,"eventTime":"({_PLAIN})")?(?:,"key":"({_PLAIN})")?(?:,"topic":"({_PLAIN})")?\}}'
)
#: A message frame as Pulsar and local Pulsar write it (compact, fields in Pulsar's order, no
#: escapes, properties of plain strings): matched whole, its fields are what JSON would give.
_USUAL_MESSAGE = re.compile(_USUAL_HEAD + r"([A-Za-z0-9+/=]*)" + _USUAL_TAIL).fullmatch
#: Frames this long take the usual shape in three steps: the regular expression reads a long
#: payload at a third of the JSON scanner's speed, and str.find jumps over it.
_LONG_FRAME = 2048
_usual_head = re.compile(_USUAL_HEAD).match
_usual_tail = re.compile(_USUAL_TAIL).fullmatch
#: A MessageFrame from a tuple of its fields, without the Python-level ``__new__``.
_new_message_frame: Callable[[tuple[Any, ...]], MessageFrame] = functools.partial(
    tuple.__new__, MessageFrame
)
_new_ack_frame: Callable[[tuple[Any, ...]], ProducerAckFrame] = functools.partial(
    tuple.__new__, ProducerAckFrame
)


_FramesDecoder = Callable[[list[str], int, type[MessageFrame]], list[MessageFrame] | None]


class Accelerator(NamedTuple):
    """The ``speedups`` extra's codec (:mod:`rxstargate._fastframes`); None for what it refuses."""

    message_fields: Callable[[str], tuple[Any, ...] | None]
    ack_fields: Callable[[str], tuple[Any, ...] | None]
    send_frame: Callable[[bytes, str], str | None]
    #: A read's message frames, or None if it refuses one or one is that long or longer.
    message_frames: _FramesDecoder


def msgspec_codec() -> Accelerator | None:
    """msgspec's codec, or None when msgspec is not installed (whatever the switch says)."""
    try:
        from rxstargate import _fastframes
    except ImportError:
        return None
    return Accelerator(
        _fastframes.message_fields,
        _fastframes.ack_fields,
        _fastframes.send_frame,
        _fastframes.message_frames,
    )


def load_accelerator() -> Accelerator | None:
    """msgspec's codec, unless msgspec is not installed or ``RXSTARGATE_SPEEDUPS=0``."""
    return msgspec_codec() if _base64.speedups_wanted() else None


_accelerator: Accelerator | None = None
_fast_message: Callable[[str], tuple[Any, ...] | None] | None = None
_fast_ack: Callable[[str], tuple[Any, ...] | None] | None = None
_fast_send: Callable[[bytes, str], str | None] | None = None
_fast_messages: _FramesDecoder | None = None


def use_accelerator(accelerator: Accelerator | None) -> Accelerator | None:
    """Decode and encode frames with ``accelerator`` first (None: the pure path only); returns
    the previous one. For tests and benchmarks, which compare both ways in one process."""
    global _accelerator, _fast_message, _fast_ack, _fast_send, _fast_messages
    previous = _accelerator
    _accelerator = accelerator
    _fast_message, _fast_ack, _fast_send, _fast_messages = accelerator or (None, None, None, None)
    return previous


def _parse(text: str) -> Any:
    try:
        value, end = _scan(text, 0)
        if end == len(text):
            return value
    except (StopIteration, ValueError, RecursionError):
        pass  # loads raises the error it is known for, or takes the whitespace around it
    try:
        return _loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise ProtocolError(f"frame is not JSON: {exc}: {text[:200]!r}") from None


def _explain(schema: Schema, data: Any, text: str) -> ProtocolError:
    try:
        schema.load(data if isinstance(data, dict) else {"_": data})
    except ValidationError as exc:
        return ProtocolError(f"unexpected frame {text[:200]!r}: {exc.messages}")
    return ProtocolError(f"unexpected frame {text[:200]!r}")


def _str_or_none(value: Any) -> bool:
    return value is None or type(value) is str


def decode_message(text: str) -> MessageFrame:
    """Decode a consumer or reader message frame.

    Raises:
        ProtocolError: when the frame is not JSON or not a message.

    Example:
        >>> frame = decode_message('{"messageId":"CAAQAw==","payload":"aGk=",'
        ...     '"properties":{},"publishTime":"2021-10-29T16:01:38.967Z","redeliveryCount":0}')
        >>> frame.payload, frame.message_id
        (b'hi', 'CAAQAw==')
    """
    if len(text) >= _LONG_FRAME:
        return _decode_long_message(text)
    fast = _fast_message
    if fast is not None:
        fields = fast(text)
        if fields is not None:
            return _new_message_frame(fields)
    usual = _USUAL_MESSAGE(text)
    if usual is not None:
        mid, payload, props, published, count, event, key, topic = usual.groups()
        try:
            raw = _base64.decode(payload)
        except ValueError:  # binascii.Error is one
            pass  # refused below, with the reason
        else:
            properties = {} if props == "{}" else _scan(props, 0)[0]
            fields = (mid, raw, properties, published, int(count), event, key, topic)
            return _new_message_frame(fields)
    return _decode_any_message(text)


def decode_messages(texts: list[str]) -> list[MessageFrame] | None:
    """The message frames of one read, as :func:`decode_message` gives each, in one call; None
    when that must decode them one at a time (no msgspec, or a frame it refuses or a long one).
    """
    fast = _fast_messages
    return None if fast is None else fast(texts, _LONG_FRAME, MessageFrame)


def _decode_long_message(text: str) -> MessageFrame:
    """:func:`decode_message` for a long frame: the usual shape is matched around its payload.

    The payload is the text up to the next quote: what strict base64 accepts has no escape,
    quote or control character, so it is the JSON string's value. msgspec reads the whole frame
    first unless pybase64 is in use, which reads a long payload several times faster.
    """
    fast = _fast_message
    if fast is not None and not _base64.accelerated():
        fields = fast(text)
        if fields is not None:
            return _new_message_frame(fields)
    head = _usual_head(text)
    if head is not None:
        start = head.end()
        end = text.find('"', start)
        tail = _usual_tail(text, end) if end > 0 else None
        if tail is not None:
            try:
                raw = _base64.decode(text[start:end])
            except ValueError:  # binascii.Error is one
                pass  # refused below, with the reason
            else:
                props, published, count, event, key, topic = tail.groups()
                properties = {} if props == "{}" else _scan(props, 0)[0]
                fields = (head[1], raw, properties, published, int(count), event, key, topic)
                return _new_message_frame(fields)
    return _decode_any_message(text)


def _decode_any_message(text: str) -> MessageFrame:
    """:func:`decode_message` for any frame: parsed as JSON, each field checked."""
    data = _parse(text)
    if type(data) is dict:
        mid = data.get("messageId")
        payload = data.get("payload")
        published = data.get("publishTime")
        props = data.get("properties", {})
        count = data.get("redeliveryCount", 0)
        key = data.get("key")
        event = data.get("eventTime")
        topic = data.get("topic")
        if (
            type(mid) is str
            and mid
            and type(payload) is str
            and type(published) is str
            and type(props) is dict
            and type(count) is int
            and (key is None or type(key) is str)
            and (event is None or type(event) is str)
            and (topic is None or type(topic) is str)
            and (not props or all(type(k) is str and type(v) is str for k, v in props.items()))
        ):
            try:
                raw = _base64.decode(payload)
            except ValueError:  # binascii.Error is one
                pass
            else:
                return MessageFrame(mid, raw, props, published, count, event, key, topic)
    raise _explain(_MESSAGE_SCHEMA, data, text)


def decode_producer_ack(text: str) -> ProducerAckFrame:
    """Decode a producer ack frame.

    Raises:
        ProtocolError: when the frame is not JSON or not an ack.

    Example:
        >>> decode_producer_ack('{"result":"ok","messageId":"CAAQAw==","context":"1"}').context
        '1'
    """
    fast = _fast_ack
    if fast is not None:
        fields = fast(text)
        if fields is not None:
            return _new_ack_frame(fields)
    data = _parse(text)
    if type(data) is dict:
        result = data.get("result")
        mid = data.get("messageId")
        context = data.get("context")
        error = data.get("errorMsg")
        if (
            type(result) is str
            and _str_or_none(mid)
            and _str_or_none(context)
            and _str_or_none(error)
        ):
            return ProducerAckFrame(result, mid, context, error)
    raise _explain(_ACK_SCHEMA, data, text)


def encode_send(
    payload: bytes,
    context: str,
    *,
    key: str | None = None,
    properties: dict[str, str] | None = None,
    event_time: str | None = None,
    deliver_at: int | None = None,
    deliver_after_ms: int | None = None,
    replication_clusters: list[str] | None = None,
) -> str:
    """Encode one producer message frame.

    Example:
        >>> encode_send(b"hi", "1", key="k")
        '{"payload":"aGk=","context":"1","key":"k"}'
    """
    if (
        key is None
        and not properties
        and event_time is None
        and deliver_at is None
        and deliver_after_ms is None
        and not replication_clusters
    ):  # the common shape, written without the general encoder (same text)
        fast = _fast_send
        written = fast(payload, context) if fast is not None else None
        if written is not None:
            return written
        encoded = binascii.b2a_base64(payload, newline=False).decode("ascii")
        return '{"payload":"' + encoded + '","context":' + _quoted(context) + "}"
    encoded = binascii.b2a_base64(payload, newline=False).decode("ascii")
    frame: dict[str, Any] = {"payload": encoded, "context": context}
    if key is not None:
        frame["key"] = key
    if properties:
        frame["properties"] = properties
    if event_time is not None:
        frame["eventTime"] = event_time
    if deliver_at is not None:
        frame["deliverAt"] = deliver_at
    if deliver_after_ms is not None:
        frame["deliverAfterMs"] = deliver_after_ms
    if replication_clusters:
        frame["replicationClusters"] = replication_clusters
    return str(_dumps(frame))


def encode_ack(message_id: str) -> str:
    """Encode an acknowledgement (also a reader's credit return).

    Example:
        >>> encode_ack("CAAQAw==")
        '{"messageId":"CAAQAw=="}'
    """
    return f'{{"messageId":{_quoted_ascii(message_id)}}}'  # one string built, not two


def encode_nack(message_id: str) -> str:
    """Encode a negative acknowledgement."""
    return f'{{"type":"negativeAcknowledge","messageId":{_quoted_ascii(message_id)}}}'


def encode_permit(count: int) -> str:
    """Encode a pull-mode permit for ``count`` more messages.

    Example:
        >>> encode_permit(100)
        '{"type":"permit","permitMessages":100}'
    """
    return '{"type":"permit","permitMessages":' + str(int(count)) + "}"


use_accelerator(load_accelerator())
