"""What the client commands share: where Pulsar is, the token, and one-line failure messages."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from types import FrameType
from typing import NoReturn

from rxstargate._config import redact_url
from rxstargate.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ConnectionClosedError,
    HandshakeError,
    StargateConnectionError,
    TopicNotFoundError,
)

__all__ = [
    "DEFAULT_URL",
    "TOKEN_VARIABLE",
    "URL_VARIABLE",
    "CommandError",
    "Endpoint",
    "Parser",
    "endpoint",
    "explain",
    "one_line",
    "properties",
    "quiet_logs",
    "require_local_extra",
    "sigterm_as_interrupt",
    "token",
    "warn",
]

#: Where the client commands look when neither --url nor $RXSTARGATE_URL says otherwise.
DEFAULT_URL = "ws://127.0.0.1:8080"
URL_VARIABLE = "RXSTARGATE_URL"
TOKEN_VARIABLE = "RXSTARGATE_TOKEN"

_MAX_LINE = 400


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


class CommandError(Exception):
    """An expected failure: printed as one line, then the command exits with ``status``."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Endpoint:
    """Where a client command connects.

    Attributes:
        url: the Pulsar WebSocket API, or None (the demo then starts local Pulsar).
        token: the token to send, or None.
        implicit: True when the URL is the default, not given by --url or the environment.
    """

    url: str | None
    token: str | None
    implicit: bool


def one_line(text: str) -> str:
    """``text`` with its whitespace runs collapsed, cut to a readable length."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_LINE else flat[: _MAX_LINE - 3] + "..."


def warn(text: str) -> None:
    """Print one line on stderr, prefixed with ``rxstargate:``."""
    print(f"rxstargate: {one_line(text)}", file=sys.stderr, flush=True)


def token(args: argparse.Namespace) -> str | None:
    """The token from --token, --token-file or $RXSTARGATE_TOKEN, in that order.

    Raises:
        CommandError: (status 2) when the file cannot be read or holds no token.
    """
    if args.token is not None and args.token_file is not None:
        raise CommandError("--token and --token-file exclude each other", 2)
    if args.token is not None:
        return str(args.token)
    if args.token_file is not None:
        try:
            text = Path(args.token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read the token file {args.token_file}: {exc}", 2) from None
        if not text:
            raise CommandError(f"the token file {args.token_file} is empty", 2)
        return text
    return os.environ.get(TOKEN_VARIABLE) or None


def endpoint(args: argparse.Namespace, *, use_default: bool = True) -> Endpoint:
    """The endpoint from --url, $RXSTARGATE_URL, else DEFAULT_URL (None without ``use_default``).

    Raises:
        CommandError: (status 2) for a URL with spaces or control characters, which no
            server can be reached at (and which Python's HTTP client refuses with its own error).
    """
    url = args.url or os.environ.get(URL_VARIABLE) or None
    if url is not None and any(char.isspace() or not char.isprintable() for char in url):
        shown = redact_url(url)
        raise CommandError(f"the URL must not contain spaces or control characters: {shown!r}", 2)
    default = DEFAULT_URL if use_default else None
    return Endpoint(url or default, token(args), implicit=url is None)


#: What the ``local`` extra installs: module -> the package that provides it.
_LOCAL_EXTRA = {
    "pulsar_lite": "pulsar-lite",
    "pulsar": "pulsar-client",
    "websockets": "websockets",
    "rich": "rich",
}


def require_local_extra(what: str, modules: tuple[str, ...]) -> None:
    """Check that the ``local`` extra's ``modules`` can be imported, before ``what`` starts.

    Raises:
        CommandError: naming the missing packages and how to install the extra, from the
            package index and in a clone of the repository (where ``rxstargate[local]``
            names a package that pip looks for on the index).
    """
    missing = [_LOCAL_EXTRA[name] for name in modules if find_spec(name) is None]
    if missing:
        raise CommandError(
            f"{what} needs the local extra (missing: {', '.join(missing)}):"
            " pip install 'rxstargate[local]', or in a clone of rxstargate: pip install '.[local]'"
        )


def properties(text: str) -> tuple[str, str]:
    """An argparse type: ``name=value`` as a pair."""
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"a property is name=value, not {text!r}")
    return name, value


def explain(error: BaseException, where: Endpoint) -> str:
    """One line that says what went wrong and, where it helps, what to do."""
    if isinstance(error, StargateConnectionError) and not isinstance(error, ConnectionClosedError):
        if where.implicit:
            return (
                f"no Pulsar WebSocket API at {where.url}: start one with `rxstargate local`"
                " or pass --url"
            )
        # The same line whichever call failed first (a socket or the admin API's http://
        # request), naming the URL the user gave rather than the endpoint's.
        shown = redact_url(where.url) if where.url else "the server"
        return f"cannot reach {shown}: {_network_reason(error)}"
    text = one_line(str(error))
    if isinstance(error, AuthenticationError):
        if where.token:
            return f"the server refused the token: {text}"
        return f"the server wants a token (--token, --token-file or ${TOKEN_VARIABLE}): {text}"
    if isinstance(error, AuthorizationError):
        return f"the token may not do this: {text}"
    if isinstance(error, TopicNotFoundError):
        return f"no such topic (or the server will not create it): {text}"
    if isinstance(error, HandshakeError):
        return f"the server refused: {text}"
    return text


def _network_reason(error: BaseException) -> str:
    """What the system said about a failed connection ("Connection refused"), else the error."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, urllib.error.URLError) and isinstance(cause.reason, BaseException):
            cause = cause.reason
            continue
        if isinstance(cause, OSError) and not isinstance(cause, urllib.error.URLError):
            return one_line(cause.strerror or str(cause) or type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    return one_line(str(error))


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Drop the client library's log records (``rxstargate.*``) until the block ends.

    For a shutdown after a failure or Ctrl-C, whose one line says it all: the sockets
    closing under in-flight work would each log a warning.
    """
    library = logging.getLogger("rxstargate")
    level = library.level
    library.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        library.setLevel(level)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Until the block ends, SIGTERM raises KeyboardInterrupt, as Ctrl-C does.

    For a command that stops cleanly on Ctrl-C (``tail`` closes its socket and exits 0):
    ``kill``, a service manager or a container's stop then end it the same way, rather
    than with status 143 and the socket cut. Only the main thread can set signal handlers;
    elsewhere the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
