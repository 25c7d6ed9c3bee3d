"""The error local Pulsar raises when it cannot start."""

from __future__ import annotations

from importlib.util import find_spec

from rxstargate.exceptions import StargateError

__all__ = ["LocalPulsarError", "require_local_extra"]

#: What local Pulsar needs of the ``local`` extra: module -> the package that provides it.
_NEEDED = {"pulsar_lite": "pulsar-lite", "pulsar": "pulsar-client", "websockets": "websockets"}


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


def require_local_extra() -> None:
    """Check that the ``local`` extra is installed, before anything starts.

    Raises:
        LocalPulsarError: naming the missing packages and how to install the extra, from the
            package index and in a clone of rxstargate (where ``rxstargate[local]`` would
            name the package on the index, not the clone).
    """
    missing = [package for module, package in _NEEDED.items() if find_spec(module) is None]
    if missing:
        raise LocalPulsarError(
            f"local Pulsar needs the local extra (missing: {', '.join(missing)}): pip install"
            " 'rxstargate[local]', or in a clone of rxstargate: pip install '.[local]'"
        )
