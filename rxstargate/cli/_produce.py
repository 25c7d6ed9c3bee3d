"""``rxstargate produce``: send arguments, lines of a file or of stdin, pipelined; print the acks.

The main thread reads input and sends without waiting for acks (``send_async``: it blocks only
while ``max_in_flight`` messages are unacknowledged); acks are printed on the producer's acks
thread as they come back.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rxstargate as rs
from rxstargate._flow import DEFAULT_MAX_IN_FLIGHT
from rxstargate.cli._common import CommandError, Endpoint, one_line, quiet_logs, warn
from rxstargate.cli._output import silence_stdout
from rxstargate.exceptions import SendError, StargateError, StargateTimeoutError

__all__ = ["run_produce"]

#: How long a send may wait for a free slot (the producer's timeout; also its flush at the end).
_SEND_TIMEOUT = 30.0
#: The most messages sent and not yet acknowledged.
_MAX_IN_FLIGHT = DEFAULT_MAX_IN_FLIGHT
#: After the producer failed, how long to wait for the acks still on their way.
_AFTER_FAILURE = 2.0


def _lines(source: Iterator[bytes]) -> Iterator[bytes]:
    for line in source:
        if line.endswith(b"\n"):  # a CR goes with the LF it precedes, not at the end of input
            line = line[:-1].removesuffix(b"\r")
        if line:
            yield line


def _inputs(args: argparse.Namespace) -> Iterator[bytes]:
    """The payloads: arguments, else the lines of --file, else the lines of stdin."""
    if args.payloads:
        yield from (os.fsencode(payload) for payload in args.payloads)
        return
    if args.file is not None:
        try:
            with Path(args.file).open("rb") as file:
                yield from _lines(file)
        except OSError as exc:
            raise CommandError(f"cannot read {args.file}: {exc.strerror or exc}") from None
        return
    if sys.stdin is None:
        return
    if sys.stdin.isatty():
        warn("reading messages from standard input, one per line; Ctrl-D ends")
    yield from _lines(iter(sys.stdin.buffer))


class _Report:
    """Counts and prints acks; observes ``producer.acks`` (on the producer's acks thread).

    Acks are printed with the message's number (its ``correlation``): lines refused before
    sending are numbered too.
    """

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.stored = 0
        self.failed = 0
        self.unanswered = 0
        self.error: Exception | None = None
        self.ended = threading.Event()
        self.broken_pipe = False

    def on_next(self, ack: rs.ProducerAck) -> None:
        number = ack.correlation if ack.correlation is not None else ack.context
        if ack.ok:
            self.stored += 1
            if not self.quiet:
                self.print(f"{number} {ack.message_id}")
            return
        self.failed += 1
        if ack.result == rs.ClientResult.CLOSED:
            self.unanswered += 1  # one line for all of them, at the end
            return
        reason = f": {ack.error_message}" if ack.error_message else ""
        warn(f"message {number} failed: {ack.result}{reason}")

    def print(self, line: str) -> None:
        """Print a line on stdout; once its reader left (``| head``), print nothing more."""
        if self.broken_pipe:
            return
        try:
            print(line, flush=True)
        except BrokenPipeError:
            self.broken_pipe = True
            silence_stdout()

    def on_error(self, error: Exception) -> None:
        self.error = error
        self.ended.set()

    def on_completed(self) -> None:
        self.ended.set()


class _NotUtf8(Exception):
    """A key that is not UTF-8 text (Pulsar keys are strings)."""


def _split(line: bytes, args: argparse.Namespace) -> tuple[str | None, bytes]:
    key: str | None = args.key
    if args.key_from:
        head, found, rest = line.partition(args.key_from.encode("utf-8", "surrogateescape"))
        if found:
            try:
                return head.decode("utf-8"), rest
            except UnicodeDecodeError:
                raise _NotUtf8(f"its key is not UTF-8: {head!r}") from None
    return key, line


def _check_key(args: argparse.Namespace) -> None:
    for option, value in (("--key", args.key), ("--key-from", args.key_from)):
        if value is None:
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise CommandError(f"{option} is not UTF-8 text: {os.fsencode(value)!r}", 2) from None


@dataclass
class _Sending:
    """What the input loop did: lines taken, sent and refused, and why it stopped early."""

    taken: int = 0
    sent: int = 0
    refused: int = 0
    fatal: BaseException | None = None  # the producer cannot send at all
    interrupted: bool = False  # Ctrl-C


def _check_options(args: argparse.Namespace) -> None:
    if args.payloads and args.file is not None:
        raise CommandError("give payloads as arguments or with --file, not both", 2)
    if args.key_from == "":
        raise CommandError("--key-from needs a delimiter of at least one character", 2)
    _check_key(args)


def _send_all(producer: rs.Producer[Any], args: argparse.Namespace, sending: _Sending) -> None:
    """Send every input line without waiting for acks; stop early on Ctrl-C or a dead producer."""
    properties = dict(args.property or []) or None
    try:
        for line in _inputs(args):
            sending.taken += 1
            try:
                key, payload = _split(line, args)
            except _NotUtf8 as exc:
                sending.refused += 1
                warn(f"message {sending.taken} failed: {exc}")
                continue
            future = producer.send_async(
                payload, key=key, properties=properties, correlation=sending.taken
            )
            sending.sent += 1
            if future.done() and not isinstance(future.exception(), SendError | None):
                sending.fatal = future.exception()
                return
    except KeyboardInterrupt:
        sending.interrupted = True
        warn("interrupted: waiting for the acks of what was sent")


def _finish(
    client: rs.Client, producer: rs.Producer[Any], report: _Report, sending: _Sending
) -> None:
    """Wait for the acks, then close.

    ``on_completed()`` waits for every ack (up to the producer's timeout), then closes. After a
    failure the acks have had their time already: only what is on its way is waited for, and
    the closing is not narrated (the summary says what became of each message).
    """
    if sending.fatal is not None:
        with contextlib.suppress(StargateError):
            producer.flush(_AFTER_FAILURE)
    with quiet_logs() if sending.fatal is not None else contextlib.nullcontext():
        producer.on_completed()
        report.ended.wait(10.0)
        client.close()


def _exit_status(args: argparse.Namespace, report: _Report, sending: _Sending) -> int:
    """Say what became of the messages; the exit status that goes with it."""
    failed = report.failed + sending.refused
    if sending.fatal is not None and report.stored == 0 and failed == 0:
        raise sending.fatal  # nothing got through: the failure is the whole story
    if report.error is not None and failed == 0:
        raise report.error
    if args.quiet:
        report.print(f"stored {report.stored} message{'s' if report.stored != 1 else ''}")
    if sending.fatal is not None:
        warn(f"{explain_send(sending.fatal)}: {_outcome(report, sending)}")
        return 1
    if report.unanswered:
        cause = f" ({one_line(str(report.error))})" if report.error else ""
        warn(f"{report.unanswered} messages got no answer before the producer closed{cause}")
    if failed:
        warn(f"{failed} of {sending.sent + sending.refused} messages failed")
    if sending.interrupted:
        return 130
    return 1 if failed else 0


def run_produce(args: argparse.Namespace, where: Endpoint) -> int:
    """Run ``rxstargate produce``; returns the exit status.

    0 when every message was stored; 1 when one failed or the producer failed (one line
    then says how many were stored); 130 when Ctrl-C left input unsent.

    Raises:
        CommandError: for options that do not fit, or input that cannot be read.
        StargateError: when the producer cannot be opened.
    """
    _check_options(args)
    report = _Report(args.quiet)
    sending = _Sending()
    assert where.url is not None
    with rs.Client(where.url, token=where.token) as client:
        producer = client.topic(args.topic).producer(
            max_in_flight=_MAX_IN_FLIGHT, timeout=_SEND_TIMEOUT
        )
        producer.acks.subscribe(report.on_next, report.on_error, report.on_completed)
        _send_all(producer, args, sending)
        _finish(client, producer, report, sending)
    return _exit_status(args, report, sending)


def _outcome(report: _Report, sending: _Sending) -> str:
    """What became of the messages, as ``S of N messages stored, ...``."""
    total = sending.sent + sending.refused
    parts = [f"{report.stored} of {total} messages stored"]
    if report.unanswered:
        parts.append(f"{report.unanswered} got no answer (they may or may not be stored)")
    others = total - report.stored - report.unanswered
    if others:
        parts.append(f"{others} failed")
    return ", ".join(parts)


def explain_send(fatal: BaseException) -> str:
    """Why the producer stopped sending, in a few words."""
    if isinstance(fatal, StargateTimeoutError):
        return f"the server stopped answering ({one_line(str(fatal))})"
    return one_line(str(fatal))
