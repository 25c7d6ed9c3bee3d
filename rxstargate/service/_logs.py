"""How ``rxstargate run`` logs: one line per record, as text or as JSON for log shippers.

Records of the app's events carry ``event``, ``stream`` and ``kind`` (and more) as extras;
a worker process adds its ``worker`` number and everyone its ``pid``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LOG_FORMATS", "configure_logging"]

LOG_FORMATS = ("text", "json")

#: The attributes every LogRecord has; anything else was given as ``extra``.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v
        for k, v in record.__dict__.items()
        if k not in _STANDARD and v is not None and not k.startswith("_")
    }


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _error_of(record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        return f"{type(error).__name__}: {error}"
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_extras(record))
        error = _error_of(record)
        if error is not None:
            line.setdefault("error", error)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL [worker N] logger: message (error)`` on one line, whatever the message."""

    def format(self, record: logging.LogRecord) -> str:
        worker = getattr(record, "_in_worker", None)  # logged by a worker process
        where = f" [worker {worker}]" if worker is not None else ""
        text = " ".join(record.getMessage().split())
        error = _error_of(record)
        if error is not None:
            text += f" ({' '.join(error.split())})"
        return f"{_timestamp(record)} {record.levelname}{where} {record.name}: {text}"


class _Tag(logging.Filter):
    """Adds ``pid`` and, in a worker process, ``worker`` to every record."""

    def __init__(self, worker: int | None) -> None:
        super().__init__()
        self._worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.pid = os.getpid()
        if self._worker is not None:
            record._in_worker = self._worker
            if getattr(record, "worker", None) is None:
                record.worker = self._worker
        return True


def configure_logging(
    log_format: str, level: str = "INFO", worker: int | None = None
) -> Callable[[], None]:
    """Send every record to stderr, one line each, in ``log_format`` (``text`` or ``json``),
    in place of the root logger's handlers; returns what puts them back."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_Tag(worker))
    root = logging.getLogger()
    before, old_level = list(root.handlers), root.level
    for old in before:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())

    def restore() -> None:
        root.removeHandler(handler)
        for old in before:
            root.addHandler(old)
        root.setLevel(old_level)

    return restore
