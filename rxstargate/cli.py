"""The ``rxstargate`` command line: ``rxstargate local`` runs local Pulsar in the foreground."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rxstargate.exceptions import StargateError


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
    local.add_argument(
        "--token",
        default=None,
        help="require this token (Authorization: Bearer TOKEN, or ?token=TOKEN) on every socket",
    )
    return parser


def _run_local(args: argparse.Namespace) -> int:
    from rxstargate.local import run_local

    try:
        run_local(
            port=args.port, broker_port=args.broker_port, data_dir=args.data_dir, token=args.token
        )
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
