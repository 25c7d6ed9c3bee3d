"""Which event loop the gateway runs on: uvloop when it is installed, asyncio's own otherwise.

uvloop (the ``speedups`` extra) makes each wake-up of the gateway's loop cheaper, which is most
of its cost at a steady modest rate, where every message wakes the loop on its own. Both loops
run the same code; ``asyncio`` forces the plain loop, ``uvloop`` insists on uvloop.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable

from rxstargate.exceptions import ConfigurationError

LOOP_KINDS = ("auto", "asyncio", "uvloop")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(kind: str = "auto") -> LoopFactory:
    """The function that makes the gateway's event loop.

    Args:
        kind: ``auto`` (uvloop if importable, else asyncio's), ``asyncio`` or ``uvloop``.

    Raises:
        ConfigurationError: for an unknown kind, or ``uvloop`` when it is not installed.
    """
    if kind not in LOOP_KINDS:
        raise ConfigurationError(f"event loop must be one of {', '.join(LOOP_KINDS)}: {kind!r}")
    if kind == "asyncio":
        return asyncio.new_event_loop
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if kind == "uvloop":
            raise ConfigurationError(
                "uvloop is not installed (pip install 'rxstargate[speedups]')"
            ) from None
        return asyncio.new_event_loop
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``, for the log."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
