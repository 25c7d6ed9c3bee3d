"""``rxstargate run APP``: an App as a long-running service, in one process or N.

Two functions for the command line: :func:`add_run_parser` adds the ``run`` subcommand to an
argparse subparsers object, :func:`run_command` runs it from the parsed arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import TYPE_CHECKING, Any

from rxstargate._argtypes import at_least_one, port, positive_seconds
from rxstargate._option_enums import SubscriptionType
from rxstargate.exceptions import ConfigurationError
from rxstargate.service._logs import LOG_FORMATS, configure_logging

if TYPE_CHECKING:  # the machinery is imported when the command runs, not to build the parser
    from rxstargate.service._app import App
    from rxstargate.service._http import MetricsServer

__all__ = ["add_run_parser", "run_command"]

_EXAMPLES = """\
examples:
  rxstargate run shop.toml                              the app in this process, until Ctrl-C
  rxstargate run shop.billing:app --processes 4         4 worker processes of it
  rxstargate run shop.toml --metrics-port 9100          /metrics, /healthz, /readyz on :9100
  rxstargate run shop.toml --log-format json            one JSON object per log line

APP is a TOML file, or module:attribute naming an rs.App (or a function returning one),
imported with the current directory on the path. SIGTERM or Ctrl-C drains: no new messages,
work in hand finished and settled, producers flushed, sockets closed, exit status 0; a
second signal exits at once. With --processes N, each worker runs the whole app (its
consumers then share their subscriptions: Exclusive ones and readers are refused), a worker
that dies is restarted after a growing delay, and one metrics port serves them all."""


def _seconds(text: str) -> float:
    value = positive_seconds(text)
    if value > 86_400:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most a day, not {text}")
    return value


def add_run_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``run`` to ``commands`` (what ``parser.add_subparsers()`` returned); the parser.

    Its defaults carry ``run=run_command``.
    """
    run: argparse.ArgumentParser = commands.add_parser(
        "run",
        help="run an app (rs.App) as a service: supervised streams, metrics, clean drains",
        description="Run an rs.App in the foreground, or as N worker processes, until SIGTERM.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("app", metavar="APP", help="a TOML file, or module:attribute naming an rs.App")
    run.add_argument(
        "--processes",
        type=at_least_one,
        default=None,
        metavar="N",
        help="run N supervised worker processes (default: the app in this process)",
    )
    run.add_argument(
        "--metrics-port",
        type=port,
        default=None,
        metavar="PORT",
        help="serve /metrics, /healthz and /readyz on this port (0 picks a free one)",
    )
    run.add_argument(
        "--metrics-host",
        default="0.0.0.0",
        metavar="HOST",
        help="the address of the metrics port (default 0.0.0.0: every interface)",
    )
    run.add_argument(
        "--drain-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long in-flight work may take to finish after SIGTERM (default 10)",
    )
    run.add_argument("--log-format", choices=LOG_FORMATS, default="text", help="default text")
    run.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="INFO",
        type=str.upper,
        help="default INFO",
    )
    run.set_defaults(run=run_command)
    return run


def _say(text: str) -> None:
    print(f"rxstargate: {' '.join(text.split())}", file=sys.stderr, flush=True)


def _refuse_for_processes(app: App, processes: int) -> None:
    """Exclusive subscriptions and readers cannot be spread over processes: say so up front."""
    for name, spec in app.consumers.items():
        if spec.subscription_type == SubscriptionType.EXCLUSIVE:
            raise ConfigurationError(
                f"consumer {name!r} has an Exclusive subscription, which one consumer holds at a"
                f" time: it cannot run in {processes} processes (use Shared, Key_Shared or"
                " Failover, or run it without --processes)"
            )
    for name in app.readers:
        raise ConfigurationError(
            f"reader {name!r} would read every message once per process: run readers in an"
            " app without --processes"
        )


def _serve_metrics(args: argparse.Namespace, exposition: Any) -> MetricsServer | None:
    from rxstargate.service._http import MetricsServer
    from rxstargate.service._monitor import emit

    if args.metrics_port is None:
        return None
    server = MetricsServer(args.metrics_host, args.metrics_port, exposition)
    emit(
        logging.INFO,
        "listening",
        "metrics on http://%s:%d/metrics (/healthz, /readyz)",
        server.host,
        server.port,
        port=server.port,
    )
    if not server.serves_metrics:
        emit(
            logging.WARNING,
            "no-metrics",
            "/metrics needs prometheus-client: pip install 'rxstargate[metrics]', or in a"
            " clone of rxstargate: pip install '.[metrics]'; /healthz and /readyz are served",
        )
    return server


def run_command(args: argparse.Namespace) -> int:
    """Run ``rxstargate run`` from its parsed arguments; returns the exit status.

    A bad APP or setting is one line on stderr and status 2.
    """
    restore = configure_logging(args.log_format, args.log_level)
    try:
        return _run(args)
    finally:
        restore()


def _run(args: argparse.Namespace) -> int:
    from rxstargate.service._loading import load_app
    from rxstargate.service._supervisor import Supervisor

    try:
        app = load_app(args.app)
    except ConfigurationError as exc:
        _say(str(exc))
        return 2
    if args.processes is None:
        return _foreground(app, args)
    try:
        _refuse_for_processes(app, args.processes)
    except ConfigurationError as exc:
        _say(str(exc))
        return 2
    finally:
        app.stop(0)  # the workers load their own; this one only checked the configuration
    supervisor = Supervisor(
        args.app,
        processes=args.processes,
        drain_timeout=args.drain_timeout,
        log_format=args.log_format,
        log_level=args.log_level,
    )
    try:
        server = _serve_metrics(args, supervisor.exposition)
    except ConfigurationError as exc:
        _say(str(exc))
        return 2
    with contextlib.ExitStack() as stack:
        if server is not None:
            stack.callback(server.close)
        return supervisor.run()


def _foreground(app: App, args: argparse.Namespace) -> int:
    from rxstargate.service._prometheus import Exposition
    from rxstargate.service._runner import StopSignals, serve

    try:
        server = _serve_metrics(args, lambda: Exposition(app.metrics()))
    except ConfigurationError as exc:
        app.stop(0)
        _say(str(exc))
        return 2
    signals = StopSignals().install()
    try:
        return serve(app, drain_timeout=args.drain_timeout, stop=signals.requested)
    finally:
        signals.restore()
        if server is not None:
            server.close()
