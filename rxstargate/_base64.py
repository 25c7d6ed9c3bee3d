"""Payloads from base64, strictly (as the schema reads them), faster with the ``speedups`` extra.

binascii's strict decoder, the default, reads a few hundred MB/s: about 0.3 ms for each 100 KiB
message. ``pybase64`` (``pip install 'rxstargate[speedups]'``) reads long payloads tens of times
faster; it is used when it can be imported, for payloads of :data:`LONG_PAYLOAD` characters or
more (below that, calling it costs what it saves). It refuses a few texts that binascii's strict
mode accepts (a stray ``=`` after a whole group), so what it refuses goes to binascii: either way
the bytes are binascii's, or binascii's refusal. ``RXSTARGATE_SPEEDUPS=0`` in the environment
turns it off, and the extra's other client accelerator (msgspec, see :mod:`rxstargate._frames`)
with it.
"""

from __future__ import annotations

import binascii
import os
import sys
from collections.abc import Callable

__all__ = [
    "LONG_PAYLOAD",
    "accelerated",
    "decode",
    "decode_long",
    "load_accelerator",
    "speedups_wanted",
    "use_accelerator",
]

#: A strict base64 decoder: ``decoder(text, validate=True)``, raising ValueError (binascii.Error
#: is one) on what it refuses.
Decoder = Callable[..., bytes]

#: Payloads of at least this many base64 characters go to the accelerator.
LONG_PAYLOAD = 1024

_accelerator: Decoder | None = None
#: The length from which a payload goes to :func:`decode_long` (never without an accelerator).
long_payload = sys.maxsize


def speedups_wanted() -> bool:
    """False when ``RXSTARGATE_SPEEDUPS=0`` turns the ``speedups`` extra's accelerators off."""
    return os.environ.get("RXSTARGATE_SPEEDUPS", "1").strip() != "0"


def load_accelerator() -> Decoder | None:
    """pybase64's decoder, unless it is not installed or ``RXSTARGATE_SPEEDUPS=0``."""
    if not speedups_wanted():
        return None
    try:
        from pybase64 import b64decode
    except ImportError:
        return None
    decoder: Decoder = b64decode
    return decoder


def use_accelerator(accelerator: Decoder | None) -> Decoder | None:
    """Decode long payloads with ``accelerator`` (None: binascii only); returns the previous one.

    For tests and benchmarks, which compare both ways in one process.
    """
    global _accelerator, long_payload
    previous = _accelerator
    _accelerator = accelerator
    long_payload = sys.maxsize if accelerator is None else LONG_PAYLOAD
    return previous


def accelerated() -> bool:
    """True when long payloads go to the accelerator."""
    return _accelerator is not None


def decode(text: str) -> bytes:
    """``text`` decoded as strict base64.

    Raises:
        binascii.Error: (a ValueError) when it is not strict base64.
        ValueError: when it is not ASCII.

    Example:
        >>> decode("aGk=")
        b'hi'
    """
    if len(text) >= long_payload:
        return decode_long(text)
    return binascii.a2b_base64(text, strict_mode=True) if text else b""


def decode_long(text: str) -> bytes:
    """:func:`decode` through the accelerator, for a payload of ``long_payload`` or more."""
    accelerator = _accelerator
    if accelerator is not None:
        try:
            return accelerator(text, validate=True)
        except ValueError:
            pass  # binascii accepts a few texts it refuses; and says why if it refuses too
    return binascii.a2b_base64(text, strict_mode=True)


use_accelerator(load_accelerator())
