"""Decoding and encoding of Pulsar's MessageIdData protobuf, the bytes behind a wire message id."""

from __future__ import annotations

from typing import NamedTuple

# Field numbers of MessageIdData in PulsarApi.proto.
_LEDGER_ID = 1
_ENTRY_ID = 2
_PARTITION = 3
_BATCH_INDEX = 4
_BATCH_SIZE = 6

_VARINT = 0
_FIXED64 = 1
_LENGTH_DELIMITED = 2
_FIXED32 = 5


class MessageIdFields(NamedTuple):
    """The numbers a MessageIdData carries; -1 where the field is absent."""

    ledger_id: int
    entry_id: int
    partition: int
    batch_index: int
    batch_size: int


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint in message id")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits in message id")


def _signed64(value: int) -> int:
    # Pulsar's clients write ids as Java longs/ints: -1 (earliest) is a 10-byte varint.
    value &= 0xFFFFFFFFFFFFFFFF
    if value >= 1 << 63:
        value -= 1 << 64
    return value


def decode_message_id(data: bytes) -> MessageIdFields:
    """Decode serialized MessageIdData bytes.

    Raises:
        ValueError: when the bytes are not a MessageIdData with a ledger and entry id.

    Example:
        >>> decode_message_id(bytes([0x08, 0x00, 0x10, 0x03]))
        MessageIdFields(ledger_id=0, entry_id=3, partition=-1, batch_index=-1, batch_size=-1)
    """
    values = {_LEDGER_ID: -1, _ENTRY_ID: -1, _PARTITION: -1, _BATCH_INDEX: -1, _BATCH_SIZE: -1}
    seen: set[int] = set()
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0 in message id")
        if wire_type == _VARINT:
            value, pos = _read_varint(data, pos)
            if field in values:
                values[field] = _signed64(value)
                seen.add(field)
        elif wire_type == _LENGTH_DELIMITED:
            length, pos = _read_varint(data, pos)
            pos += length
            if pos > len(data):
                raise ValueError("truncated field in message id")
        elif wire_type == _FIXED64:
            pos += 8
        elif wire_type == _FIXED32:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type} in message id")
    if pos != len(data):
        raise ValueError("truncated field in message id")
    if _LEDGER_ID not in seen or _ENTRY_ID not in seen:
        raise ValueError("message id has no ledger id or entry id")
    return MessageIdFields(
        values[_LEDGER_ID],
        values[_ENTRY_ID],
        values[_PARTITION],
        values[_BATCH_INDEX],
        values[_BATCH_SIZE],
    )


def _write_varint(value: int, out: bytearray) -> None:
    value &= 0xFFFFFFFFFFFFFFFF
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def encode_message_id(
    ledger_id: int, entry_id: int, partition: int = -1, batch_index: int = -1, batch_size: int = -1
) -> bytes:
    """Encode MessageIdData bytes; fields at -1 (absent) are left out, as Pulsar's clients do.

    Example:
        >>> encode_message_id(0, 3)
        b'\\x08\\x00\\x10\\x03'
    """
    out = bytearray()
    for field, value in (
        (_LEDGER_ID, ledger_id),
        (_ENTRY_ID, entry_id),
        (_PARTITION, partition),
        (_BATCH_INDEX, batch_index),
        (_BATCH_SIZE, batch_size),
    ):
        if field in (_LEDGER_ID, _ENTRY_ID) or value >= 0:
            _write_varint(field << 3 | _VARINT, out)
            _write_varint(value, out)
    return bytes(out)
