"""The ``rxstargate`` command's arguments: its commands, their options, help and examples."""

from __future__ import annotations

import argparse
from pathlib import Path

from rxstargate._argtypes import at_least_one, port, positive_seconds
from rxstargate._option_enums import SubscriptionType
from rxstargate._version import __version__
from rxstargate.cli._common import DEFAULT_URL, TOKEN_VARIABLE, URL_VARIABLE, Parser, properties
from rxstargate.cli._output import DIRECTIVES
from rxstargate.cli._tail import parse_start
from rxstargate.service.command import add_run_parser

__all__ = ["parser"]

_MAIN_EXAMPLES = """\
examples:
  rxstargate demo                          a tour: local Pulsar, a keyed pipeline, a summary
  rxstargate local                         run local Pulsar in the foreground (ws://127.0.0.1:8080)
  rxstargate produce orders apple banana   send two messages
  rxstargate tail orders --start earliest  print a topic's messages and follow it
  rxstargate run shop.toml --processes 4   run an app (rs.App) as a service, in 4 processes

Client commands connect to --url, else $RXSTARGATE_URL, else a running `rxstargate local`
(ws://127.0.0.1:8080). `rxstargate COMMAND --help` tells more."""

_TAIL_EXAMPLES = (
    """\
examples:
  rxstargate tail orders                           new messages, until Ctrl-C
  rxstargate tail orders -o earliest -e            everything stored, then exit
  rxstargate tail orders -o -10                    the last 10 messages, then follow
  rxstargate tail orders -J -c 5                   5 messages as JSON lines
  rxstargate tail orders -f '%k: %s' -k alice      alice's messages as "key: payload"
  rxstargate tail orders -s billing -e             consume (and ack) the backlog of billing

format directives (--format):
"""
    + "\n".join(f"  %{letter}  {what}" for letter, (what, _) in DIRECTIVES.items())
    + """
  %%  a percent sign; \\n \\t \\r \\\\ escapes; a newline is added unless the format ends
      with one. Without --format or --json each payload is printed as it is, one per line.

--json prints {"topic", "id", "key", "properties", "publish_time", "event_time" (ISO 8601),
"redelivery_count", "payload", "payload_encoding"}: the payload is text when it is UTF-8
("payload_encoding": "utf-8"), else base64 ("base64").

--exit stops once the topic's end, as it was when tail began, is printed (Pulsar's admin
lastMessageId, on the same port). Where the server refuses that, tail says so and stops
after --idle seconds without a message instead; with --subscription it stops after
--idle seconds of silence too (a subscription may already be past the end). --start -N
(--last N) asks for that end too, reads from just before the last N messages (from the
earliest when they span ledgers) and prints the last N once caught up, then follows."""
)

_PRODUCE_EXAMPLES = """\
examples:
  rxstargate produce orders apple banana              two messages from arguments
  seq 1000 | rxstargate produce orders -q             1000 messages from stdin; print a count
  rxstargate produce orders --file orders.txt         one message per line of the file
  rxstargate produce orders -K : <<< 'alice:apple'    key "alice", payload "apple"
  rxstargate produce orders -k alice -p region=eu hi  with a key and a property

Each ack is printed as "CONTEXT MESSAGE_ID" (CONTEXT numbers the messages from 1); failures
go to stderr and make the exit status 1. A line ends at \\n, and a \\r just before it goes
too (CRLF files); empty lines are skipped."""

_DEMO_EXAMPLES = """\
examples:
  rxstargate demo                                  starts its own local Pulsar, then stops it
  rxstargate demo --messages 100000
  rxstargate demo --url ws://127.0.0.1:8080        against a running Pulsar WebSocket API"""


def _connection(default: str) -> Parser:
    """The options every client command takes: where Pulsar is and the token."""
    parent = Parser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument(
        "--url",
        default=None,
        help=f"the Pulsar WebSocket API (default: ${URL_VARIABLE}, {default})",
    )
    group.add_argument(
        "--token",
        default=None,
        help=f"the token to send (default: ${TOKEN_VARIABLE}); visible in the process list",
    )
    group.add_argument(
        "--token-file", type=Path, default=None, metavar="FILE", help="read the token from FILE"
    )
    return parent


def _add_local(commands: argparse._SubParsersAction[Parser]) -> None:
    local = commands.add_parser(
        "local",
        help="run local Pulsar (broker + WebSocket API) in the foreground",
        description=(
            "Start the embedded pulsar-lite broker and rxstargate's Pulsar WebSocket gateway on "
            "127.0.0.1, print their URLs and run until Ctrl-C or SIGTERM."
        ),
        epilog=(
            f"Without --token or --token-file, the token comes from ${TOKEN_VARIABLE} if it is "
            "set. The token guards the WebSocket API only: the broker port accepts any client "
            "(it listens on 127.0.0.1 only)."
        ),
    )
    local.add_argument(
        "--port", type=port, default=8080, help="WebSocket API port (0 picks a free one; 8080)"
    )
    local.add_argument(
        "--broker-port",
        type=port,
        default=6650,
        help="Pulsar binary protocol port (0 picks a free one; default 6650)",
    )
    local.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the broker's data here across restarts (default: a temporary directory)",
    )
    secret = local.add_mutually_exclusive_group()
    secret.add_argument(
        "--token",
        default=None,
        help=(
            "require this token (Authorization: Bearer TOKEN, or ?token=TOKEN) on every socket; "
            f"visible in the process list: prefer --token-file or ${TOKEN_VARIABLE}"
        ),
    )
    secret.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="read the token from this file (surrounding whitespace is ignored)",
    )


_TOPIC_HELP = "orders, tenant/ns/orders or persistent://..."


def _add_demo(commands: argparse._SubParsersAction[Parser]) -> None:
    demo = commands.add_parser(
        "demo",
        parents=[_connection("else start local Pulsar for the run")],
        help="orders through a key-ordered, backpressured pipeline, with a summary",
        description=(
            "Produce keyed orders and consume them with a key-ordered, acked pipeline, showing "
            "progress and a summary table. Without a URL it starts local Pulsar for the run and "
            "stops it after; it leaves nothing running."
        ),
        epilog=_DEMO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--messages", type=at_least_one, default=20_000, help="how many orders (default 20000)"
    )


def _add_tail_positions(where: argparse._ArgumentGroup) -> None:
    """tail's options that say where to start and when to stop."""
    where.add_argument(
        "-o",
        "--start",
        type=parse_start,
        default=None,
        metavar="POSITION",
        help="latest (default: new messages only), earliest, -N (the last N) or a message id",
    )
    where.add_argument(
        "-n",
        "--last",
        type=at_least_one,
        default=None,
        metavar="N",
        help="the last N, as --start -N",
    )
    where.add_argument(
        "-c", "--count", type=at_least_one, default=None, metavar="N", help="exit after N messages"
    )
    where.add_argument(
        "-e", "--exit", action="store_true", help="exit once the end of the topic is printed"
    )
    where.add_argument(
        "--idle",
        type=positive_seconds,
        default=1.0,
        metavar="SECONDS",
        help="silence that counts as the end where the end cannot be asked for (default 1)",
    )


def _add_tail(commands: argparse._SubParsersAction[Parser]) -> None:
    tail = commands.add_parser(
        "tail",
        parents=[_connection(DEFAULT_URL)],
        help="print a topic's messages (a reader, or a consumer with --subscription)",
        description="Print a topic's messages, one per line, and follow it until Ctrl-C.",
        epilog=_TAIL_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tail.add_argument("topic", metavar="TOPIC", help=_TOPIC_HELP)
    _add_tail_positions(tail.add_argument_group("where to start and stop"))
    shape = tail.add_argument_group("output").add_mutually_exclusive_group()
    shape.add_argument(
        "-J", "--json", action="store_true", help="one JSON object per line (see below)"
    )
    shape.add_argument("-f", "--format", default=None, help="a format string such as '%%k %%s'")
    which = tail.add_argument_group("filters")
    which.add_argument("-k", "--key", default=None, help="only messages with this key")
    which.add_argument(
        "-p",
        "--property",
        type=properties,
        action="append",
        metavar="NAME=VALUE",
        help="only messages with this property (repeatable: all must match)",
    )
    consumer = tail.add_argument_group("consuming")
    consumer.add_argument(
        "-s",
        "--subscription",
        default=None,
        metavar="NAME",
        help="consume through this subscription and ack what is read (filtered-out too)",
    )
    consumer.add_argument(
        "--subscription-type",
        choices=[kind.value for kind in SubscriptionType],
        default=None,
        help="with --subscription (default Exclusive)",
    )


def _add_produce(commands: argparse._SubParsersAction[Parser]) -> None:
    produce = commands.add_parser(
        "produce",
        parents=[_connection(DEFAULT_URL)],
        help="send messages from arguments, a file or stdin, one per line",
        description=(
            "Send each PAYLOAD, else each line of --file, else each line of stdin, without "
            "waiting for one ack before the next send."
        ),
        epilog=_PRODUCE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    produce.add_argument("topic", metavar="TOPIC", help=_TOPIC_HELP)
    produce.add_argument(
        "payloads", nargs="*", default=[], metavar="PAYLOAD", help="messages to send"
    )
    produce.add_argument(
        "-l", "--file", type=Path, default=None, help="send each line of this file"
    )
    produce.add_argument("-k", "--key", default=None, help="the key of every message")
    produce.add_argument(
        "-K",
        "--key-from",
        default=None,
        metavar="DELIM",
        help="split each line at the first DELIM into key and payload (no DELIM: no key)",
    )
    produce.add_argument(
        "-p",
        "--property",
        type=properties,
        action="append",
        metavar="NAME=VALUE",
        help="a property of every message (repeatable)",
    )
    produce.add_argument(
        "-q", "--quiet", action="store_true", help="print only how many were stored"
    )


def parser() -> Parser:
    """The parser of the ``rxstargate`` command; ``args.command`` names the command given."""
    root = Parser(
        prog="rxstargate",
        description="Apache Pulsar's WebSocket API as ReactiveX streams.",
        epilog=_MAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--version", action="version", version=f"rxstargate {__version__}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(commands)
    _add_tail(commands)
    _add_produce(commands)
    add_run_parser(commands)
    _add_local(commands)
    return root
