"""One worker process of ``rxstargate run --processes N`` (started by its supervisor).

``python -m rxstargate.service._worker APP --index I --status-fd W --control-fd R ...``: runs
the app until SIGTERM (or its supervisor's end: the control pipe closes), writing the app's
figures as one JSON line to the status pipe every quarter second. Exit status: 0 after a
drain, 1 when a stream failed for good, 2 when the app cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from collections.abc import Sequence

from rxstargate.exceptions import ConfigurationError
from rxstargate.service._loading import load_app
from rxstargate.service._logs import LOG_FORMATS, configure_logging
from rxstargate.service._metrics import AppMetrics
from rxstargate.service._monitor import emit
from rxstargate.service._runner import StopSignals, serve
from rxstargate.service._supervisor import CONFIGURATION_FAILED

__all__ = ["main"]


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rxstargate-worker")
    parser.add_argument("app")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--status-fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--drain-timeout", type=float, default=10.0)
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def _watch_parent(control_fd: int, stop: threading.Event) -> None:
    """Set ``stop`` when the supervisor's end of the control pipe closes (it exited)."""

    def wait() -> None:
        try:
            while os.read(control_fd, 1):
                pass
        except OSError:
            pass
        if not stop.is_set():
            emit(logging.WARNING, "orphaned", "the supervisor is gone: draining")
            stop.set()

    threading.Thread(target=wait, name="rxstargate-worker-parent", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one worker; returns its exit status."""
    args = _arguments(argv)
    configure_logging(args.log_format, args.log_level, worker=args.index)
    signals = StopSignals().install()
    _watch_parent(args.control_fd, signals.requested)
    try:
        app = load_app(args.app)
    except ConfigurationError as exc:
        emit(logging.ERROR, "configuration", "%s", exc)
        return CONFIGURATION_FAILED

    def report(metrics: AppMetrics) -> None:
        line = json.dumps(metrics.to_json(), separators=(",", ":")).encode() + b"\n"
        try:
            while line:
                line = line[os.write(args.status_fd, line) :]
        except OSError:  # the supervisor is gone
            signals.requested.set()

    return serve(app, drain_timeout=args.drain_timeout, stop=signals.requested, report=report)


if __name__ == "__main__":
    sys.exit(main())
