"""The ``rxstargate`` command line: ``rxstargate local`` runs local Pulsar in the foreground."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from rxstargate.exceptions import StargateError

TOKEN_VARIABLE = "RXSTARGATE_TOKEN"


def _version() -> str:
    try:
        return version("rxstargate")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxstargate",
        description="Apache Pulsar's WebSocket API as ReactiveX streams.",
    )
    parser.add_argument("--version", action="version", version=f"rxstargate {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    local = commands.add_parser(
        "local",
        help="run local Pulsar (broker + WebSocket API) in the foreground",
        description=(
            "Start the embedded pulsar-lite broker and rxstargate's Pulsar WebSocket gateway on "
            "127.0.0.1, print their URLs and run until Ctrl-C or SIGTERM."
        ),
    )
    local.add_argument(
        "--port",
        type=_port,
        default=8080,
        help="WebSocket API port (0 picks a free one; default 8080)",
    )
    local.add_argument(
        "--broker-port",
        type=_port,
        default=6650,
        help="Pulsar binary protocol port (0 picks a free one; default 6650)",
    )
    local.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the broker's data here across restarts (default: a temporary directory)",
    )
    token = local.add_mutually_exclusive_group()
    token.add_argument(
        "--token",
        default=None,
        help=(
            "require this token (Authorization: Bearer TOKEN, or ?token=TOKEN) on every socket; "
            f"visible in the process list: prefer --token-file or ${TOKEN_VARIABLE}"
        ),
    )
    token.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="read the token from this file (surrounding whitespace is ignored)",
    )
    local.epilog = (
        f"Without --token or --token-file, the token comes from ${TOKEN_VARIABLE} if it is set. "
        "The token guards the WebSocket API only: the broker port accepts any client (it "
        "listens on 127.0.0.1 only)."
    )
    return parser


def _token(args: argparse.Namespace) -> str | None:
    """The token from --token, --token-file or the environment, in that order.

    Raises:
        ValueError: when the file cannot be read or holds no token.
    """
    if args.token is not None:
        return str(args.token)
    if args.token_file is not None:
        try:
            text = Path(args.token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the token file {args.token_file}: {exc}") from None
        if not text:
            raise ValueError(f"the token file {args.token_file} is empty")
        return text
    return os.environ.get(TOKEN_VARIABLE) or None


def _run_local(args: argparse.Namespace) -> int:
    from rxstargate.local import run_local

    try:
        token = _token(args)
    except ValueError as exc:
        print(f"rxstargate: {exc}", file=sys.stderr)
        return 2
    try:
        run_local(port=args.port, broker_port=args.broker_port, data_dir=args.data_dir, token=token)
    except StargateError as exc:
        print(f"rxstargate: {exc}", file=sys.stderr)
        return 1
    print("stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rxstargate`` console script.

    Example:
        ``rxstargate local --port 8080`` serves ``ws://127.0.0.1:8080`` until Ctrl-C.
    """
    args = _parser().parse_args(argv)
    if args.command == "local":
        return _run_local(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
