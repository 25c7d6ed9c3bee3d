"""``main()``: parse the arguments, run the command, turn expected failures into one line."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from rxstargate.cli._arguments import parser as _parser
from rxstargate.cli._common import (
    CommandError,
    Endpoint,
    endpoint,
    explain,
    require_local_extra,
    sigterm_as_interrupt,
    token,
    warn,
)
from rxstargate.exceptions import ConfigurationError, StargateError

__all__ = ["main"]


def _run_local(args: argparse.Namespace) -> int:
    require_local_extra("local Pulsar", ("pulsar_lite", "pulsar", "websockets"))
    from rxstargate.local import run_local

    secret = token(args)
    run_local(port=args.port, broker_port=args.broker_port, data_dir=args.data_dir, token=secret)
    print("stopped", flush=True)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    where = endpoint(args, use_default=False)
    # Without a URL it starts local Pulsar: the whole extra; else only its display.
    require_local_extra(
        "the demo", ("rich",) if where.url else ("pulsar_lite", "pulsar", "websockets", "rich")
    )
    from rxstargate.cli._demo import run_demo

    try:
        with sigterm_as_interrupt():  # what it started is stopped and removed either way
            run_demo(where.url, token=where.token, messages=args.messages)
    except ConfigurationError as exc:
        raise CommandError(str(exc), 2) from None
    except StargateError as exc:
        raise CommandError(explain(exc, where)) from None
    return 0


def _client(
    command: Callable[[argparse.Namespace, Endpoint], int], args: argparse.Namespace
) -> int:
    where = endpoint(args)
    try:
        return command(args, where)
    except ConfigurationError as exc:
        raise CommandError(str(exc), 2) from None
    except StargateError as exc:
        raise CommandError(explain(exc, where)) from None


def _run_tail(args: argparse.Namespace) -> int:
    from rxstargate.cli._tail import run_tail

    return _client(run_tail, args)


def _run_produce(args: argparse.Namespace) -> int:
    from rxstargate.cli._produce import run_produce

    with sigterm_as_interrupt():  # what was sent is still acked, as on Ctrl-C
        return _client(run_produce, args)


def _run_app(args: argparse.Namespace) -> int:
    from rxstargate.service.command import run_command

    return run_command(args)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": _run_demo,
    "run": _run_app,
    "tail": _run_tail,
    "produce": _run_produce,
    "local": _run_local,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rxstargate`` console script; returns the exit status.

    Expected failures print one line on stderr: status 1, or 2 for a usage error.

    Example:
        ``rxstargate local --port 8080`` serves ``ws://127.0.0.1:8080`` until Ctrl-C.
    """
    try:
        parser = _parser()
        args, extra = parser.parse_known_args(argv)
        if args.command == "produce" and not any(item.startswith("-") for item in extra):
            args.payloads += extra  # payloads after options: `produce TOPIC -k key a b`
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return _COMMANDS[args.command](args)
    except (CommandError, StargateError) as exc:
        warn(str(exc))
        return exc.status if isinstance(exc, CommandError) else 1
    except KeyboardInterrupt:
        warn("interrupted")
        return 130
