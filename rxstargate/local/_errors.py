"""The error local Pulsar raises when it cannot start."""

from __future__ import annotations

from rxstargate.exceptions import StargateError

__all__ = ["LocalPulsarError"]


class LocalPulsarError(StargateError):
    """Raised when the local broker or gateway does not start (the message has the log tail)."""


def in_use(port: int) -> str:
    """The message for a WebSocket gateway port that something else holds."""
    return f"the WebSocket gateway's port 127.0.0.1:{port} is already in use"


def log_tail(path: str, lines: int = 20) -> str:
    """The last lines of a log file, or a note that there is none."""
    try:
        with open(path, encoding="utf-8", errors="replace") as log:
            tail = log.readlines()[-lines:]
    except OSError:
        return f"(no log at {path})"
    return "".join(tail).rstrip() or f"(empty log at {path})"
