"""The handler the ``rxstargate run`` tests run in worker processes: a bridge that says who
handled each message, and holds chosen messages so that a test can act while they are in flight.

Each output is the input's payload and key, with properties ``pid`` (the worker that handled
it) and ``redelivery`` (the input's redelivery count). With ``$BRIDGE_MARKERS`` naming a
directory, an input whose payload starts with:

- ``hold-kill``: is held (never returns) the first time, after writing ``held`` there (the
  worker's pid); the next delivery, once ``held`` exists, is bridged;
- ``hold-drain``: writes ``draining`` (the pid) and is held until a ``release`` file appears.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import rxstargate as rs

MARKERS = "BRIDGE_MARKERS"
_HELD_AT_MOST = 60.0  # seconds; a test ends long before


def _mark(path: Path) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(str(os.getpid()))
    partial.rename(path)  # whole, or not there


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + _HELD_AT_MOST
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def _hold(markers: Path, payload: bytes) -> None:
    if payload.startswith(b"hold-kill"):
        held = markers / "held"
        if not held.exists():
            _mark(held)
            _wait_for(markers / "never")
    elif payload.startswith(b"hold-drain"):
        _mark(markers / "draining")
        _wait_for(markers / "release")


def bridge(message: rs.Message[Any]) -> rs.OutgoingMessage:
    """The input, with who handled it."""
    markers = os.environ.get(MARKERS)
    if markers:
        _hold(Path(markers), message.payload)
    return rs.OutgoingMessage(
        message.payload,
        key=message.key,
        properties={"pid": str(os.getpid()), "redelivery": str(message.redelivery_count)},
    )
