"""Running one App in this process until a signal: what ``rxstargate run`` and each of its
worker processes do.

SIGTERM or SIGINT asks for a drain (the app stops: no new messages, work in hand finished and
settled, producers flushed, sockets closed); a second one exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from rxstargate.service._app import App
from rxstargate.service._metrics import AppMetrics
from rxstargate.service._monitor import emit

__all__ = ["StopSignals", "serve"]

#: How often a running app's figures are reported (to a supervisor), in seconds.
TICK = 0.25


class StopSignals:
    """SIGTERM and SIGINT handlers: the first sets :attr:`requested`, a second exits at once.

    ``on_second`` runs before that exit (to kill worker processes, say).
    """

    def __init__(self, on_second: Callable[[], None] | None = None) -> None:
        self.requested = threading.Event()
        self.signal: int | None = None
        self._on_second = on_second
        self._previous: dict[int, Any] = {}

    def install(self) -> StopSignals:
        """Take SIGTERM and SIGINT (from the main thread); returns self."""
        for number in (signal.SIGTERM, signal.SIGINT):
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def restore(self) -> None:
        """Give SIGTERM and SIGINT back their former handlers."""
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        name = signal.Signals(number).name
        if self.requested.is_set():
            emit(logging.WARNING, "exit", "%s again: exiting at once", name, signal=name)
            if self._on_second is not None:
                self._on_second()
            os._exit(128 + number)
        self.signal = number
        self.requested.set()
        emit(logging.INFO, "signal", "%s: draining (again to exit at once)", name, signal=name)


def serve(
    app: App,
    *,
    drain_timeout: float,
    stop: threading.Event,
    report: Callable[[AppMetrics], None] | None = None,
) -> int:
    """Start ``app``, run it until ``stop`` is set or a stream fails for good, then drain.

    ``report`` gets the app's figures every :data:`TICK` seconds, and once more at the end.

    Returns:
        The exit status: 0 after a drain, 1 when a stream failed for good.
    """
    app.start()
    try:
        while not stop.wait(TICK) and app.error is None:
            if report is not None:
                report(app.metrics())
    finally:
        app.stop(drain_timeout)
    if report is not None:
        report(app.metrics())
    if app.error is not None:
        emit(logging.ERROR, "failed", "stopped: a stream failed for good: %r", app.error)
        return 1
    return 0
