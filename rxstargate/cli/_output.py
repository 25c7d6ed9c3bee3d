"""How ``rxstargate tail`` prints a message: one JSON object per line, or a kcat-style format."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import IO, Any

from rxstargate.models import Message

__all__ = ["DIRECTIVES", "Render", "Stdout", "compile_format", "render_json", "silence_stdout"]

#: Renders one message as the bytes to print (newline included).
Render = Callable[[Message[Any]], bytes]


def _millis(moment: datetime | None) -> bytes:
    return b"" if moment is None else str(round(moment.timestamp() * 1000)).encode()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds")


_PROPERTY_ESCAPES = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\="})


def _properties(message: Message[Any]) -> bytes:
    """``name=value,name=value``, with ``\\``, ``,`` and ``=`` escaped by a backslash in names
    and values, so that the text splits back into the same properties."""
    escaped = (
        f"{name.translate(_PROPERTY_ESCAPES)}={value.translate(_PROPERTY_ESCAPES)}"
        for name, value in message.properties.items()
    )
    return ",".join(escaped).encode()


#: The format directives: letter -> (what it prints, how).
DIRECTIVES: dict[str, tuple[str, Callable[[Message[Any]], bytes]]] = {
    "s": ("the payload, as it is", lambda m: m.payload),
    "k": ("the key (empty when none)", lambda m: (m.key or "").encode()),
    "t": ("the topic", lambda m: str(m.topic).encode()),
    "i": ("the message id (base64, as --start takes it)", lambda m: str(m.message_id).encode()),
    "T": ("the publish time, in milliseconds since the epoch", lambda m: _millis(m.publish_time)),
    "h": ("the properties, as name=value,name=value (\\ , = escaped by \\)", _properties),
}

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def compile_format(text: str) -> Render:
    """A renderer for a kcat-style format string (``%s %k %t %i %T %h``, ``%%``, ``\\n \\t``).

    A newline is added unless the format ends with one.

    Raises:
        ValueError: naming an unknown directive or escape.

    Example:
        >>> render = compile_format("%k=%s")
    """
    parts: list[bytes | Callable[[Message[Any]], bytes]] = []
    literal: list[str] = []
    position = 0
    while position < len(text):
        char = text[position]
        following = text[position + 1] if position + 1 < len(text) else ""
        if char == "%":
            if following == "%":
                literal.append("%")
            elif following in DIRECTIVES:
                parts.append("".join(literal).encode())
                literal = []
                parts.append(DIRECTIVES[following][1])
            else:
                known = " ".join(f"%{letter}" for letter in DIRECTIVES)
                raise ValueError(f"unknown format directive %{following} (known: {known} %%)")
            position += 2
        elif char == "\\" and following in _ESCAPES:
            literal.append(_ESCAPES[following])
            position += 2
        else:
            literal.append(char)
            position += 1
    ending = "".join(literal)
    if not ending.endswith("\n"):
        ending += "\n"
    parts.append(ending.encode())
    pieces = [part for part in parts if part != b""]

    def render(message: Message[Any]) -> bytes:
        return b"".join(part if isinstance(part, bytes) else part(message) for part in pieces)

    return render


def render_json(message: Message[Any]) -> bytes:
    """One JSON object and a newline: the payload as text when it is UTF-8, else base64."""
    try:
        payload, encoding = message.payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(message.payload).decode("ascii"), "base64"
    record = {
        "topic": str(message.topic),
        "id": str(message.message_id),
        "key": message.key,
        "properties": dict(message.properties),
        "publish_time": _iso(message.publish_time),
        "event_time": _iso(message.event_time),
        "redelivery_count": message.redelivery_count,
        "payload": payload,
        "payload_encoding": encoding,
    }
    return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"


class Stdout:
    """Writes bytes to standard output as they come (binary payloads intact)."""

    def __init__(self) -> None:
        self._text: IO[str] = sys.stdout
        self._binary: IO[bytes] | None = getattr(sys.stdout, "buffer", None)
        if self._binary is not None:
            self._text.flush()  # what was printed before goes first; after, only bytes

    def write(self, data: bytes) -> None:
        """Write and flush ``data``.

        Raises:
            BrokenPipeError: when the reader of the pipe went away.
        """
        if self._binary is None:
            self._text.write(data.decode("utf-8", "replace"))
            self._text.flush()
            return
        self._binary.write(data)
        self._binary.flush()


def silence_stdout() -> None:
    """The reader of our pipe left (``| head``): drop what is still buffered for it.

    Standard output then goes to /dev/null, so neither later writes nor the flush at exit
    raise BrokenPipeError.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
