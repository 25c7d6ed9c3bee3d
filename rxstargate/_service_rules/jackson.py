"""Frame fields read as Pulsar's WebSocket handlers read them: JSON mapped onto Java fields.

Pulsar parses a producer's send frame into ``ProducerMessage`` and a consumer's command into
``ConsumerCommand`` with Jackson. A value that does not map onto its Java field is error 3
("Failed to de-serialize from JSON"); each side turns :class:`JacksonError` into its own error.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = [
    "ACK",
    "END_OF_TOPIC",
    "NACK",
    "PERMIT",
    "UNSUBSCRIBE",
    "JacksonError",
    "java_int",
    "java_long",
    "java_string",
]

#: The consumer command types (``ConsumerCommand.type``); no or an unknown type is an ack.
ACK = "ack"
NACK = "negativeAcknowledge"
PERMIT = "permit"
UNSUBSCRIBE = "unsubscribe"
END_OF_TOPIC = "isEndOfTopic"

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]{1,20}")


class JacksonError(ValueError):
    """A JSON value that Jackson cannot map onto its Java field (Pulsar's error 3)."""


def java_string(value: Any, field: str) -> str | None:
    """A JSON value as Jackson coerces it into a ``String`` field (scalars only).

    Raises:
        JacksonError: for an object or an array.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    raise JacksonError(f"Cannot deserialize value of type `java.lang.String` for field {field!r}")


def java_int(value: Any) -> int | None:
    """A JSON value as Jackson maps it onto an ``Integer`` field.

    Numbers with a fraction are truncated and numeric text is converted.

    Raises:
        JacksonError: for booleans, containers, non-numeric text and values out of int range.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise JacksonError("Cannot coerce boolean to `java.lang.Integer`")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value) or not INT_MIN <= value <= INT_MAX:
            raise JacksonError(f"Numeric value ({value}) out of range of int")
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if not _INTEGER_TEXT.fullmatch(text):
            raise JacksonError(f"Cannot deserialize `java.lang.Integer` from String {value!r}")
        number = int(text)
    else:
        raise JacksonError("Cannot deserialize value of type `java.lang.Integer`")
    if not INT_MIN <= number <= INT_MAX:
        raise JacksonError(f"Numeric value ({number}) out of range of int")
    return number


def java_long(value: Any, field: str) -> int | None:
    """A JSON integer for a ``long`` field, or None when absent.

    Raises:
        JacksonError: for anything but an integer.
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise JacksonError(f"Cannot deserialize value of type `long` for field {field!r}")
    return value
