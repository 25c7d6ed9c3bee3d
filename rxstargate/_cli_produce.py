"""``rxstargate produce``: send arguments, lines of a file or of stdin, pipelined; print the acks.

The main thread reads input and sends without waiting for acks (``send_async``: it blocks only
while ``max_in_flight`` messages are unacknowledged); acks are printed on the producer's acks
thread as they come back.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import rxstargate as rs
from rxstargate._cli_common import CommandError, Endpoint, one_line, warn
from rxstargate.exceptions import SendError

__all__ = ["run_produce"]

#: How long to wait for the acks of what was sent (the producer's own send timeout).
_ACK_WAIT = 30.0


def _lines(source: Iterator[bytes]) -> Iterator[bytes]:
    for line in source:
        line = line.removesuffix(b"\n").removesuffix(b"\r")
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
    """Counts and prints acks; observes ``producer.acks`` (on the producer's acks thread)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.stored = 0
        self.failed = 0
        self.unanswered = 0
        self.error: Exception | None = None
        self.ended = threading.Event()

    def on_next(self, ack: rs.ProducerAck) -> None:
        if ack.ok:
            self.stored += 1
            if not self.quiet:
                print(f"{ack.context} {ack.message_id}", flush=True)
            return
        self.failed += 1
        if ack.result == rs.ClientResult.CLOSED:
            self.unanswered += 1  # one line for all of them, at the end
            return
        reason = f": {ack.error_message}" if ack.error_message else ""
        warn(f"message {ack.context} failed: {ack.result}{reason}")

    def on_error(self, error: Exception) -> None:
        self.error = error
        self.ended.set()

    def on_completed(self) -> None:
        self.ended.set()


class _Outstanding:
    """Sent messages whose futures are unresolved (a resolved one's ack is already emitted)."""

    def __init__(self) -> None:
        self._settled = threading.Condition()
        self._count = 0

    def add(self, future: Future[rs.ProducerAck]) -> None:
        with self._settled:
            self._count += 1
        future.add_done_callback(self._done)

    def _done(self, _: Future[rs.ProducerAck]) -> None:
        with self._settled:
            self._count -= 1
            self._settled.notify_all()

    def wait(self, timeout: float) -> None:
        with self._settled:
            self._settled.wait_for(lambda: self._count == 0, timeout)


def _split(line: bytes, args: argparse.Namespace) -> tuple[str | None, bytes]:
    key: str | None = args.key
    if args.key_from:
        head, found, rest = line.partition(args.key_from.encode("utf-8"))
        if found:
            return head.decode("utf-8", "replace"), rest
    return key, line


def run_produce(args: argparse.Namespace, where: Endpoint) -> int:
    """Run ``rxstargate produce``; returns the exit status (1 when a message failed).

    Raises:
        CommandError: for options that do not fit, or input that cannot be read.
        StargateError: when the producer cannot be opened.
    """
    if args.payloads and args.file is not None:
        raise CommandError("give payloads as arguments or with --file, not both", 2)
    if args.key_from == "":
        raise CommandError("--key-from needs a delimiter of at least one character", 2)
    properties = dict(args.property or []) or None
    report = _Report(args.quiet)
    outstanding = _Outstanding()
    sent = 0
    fatal: BaseException | None = None
    assert where.url is not None
    with rs.Client(where.url, token=where.token) as client:
        producer = client.topic(args.topic).producer()
        producer.acks.subscribe(report.on_next, report.on_error, report.on_completed)
        try:
            for line in _inputs(args):
                key, payload = _split(line, args)
                future = producer.send_async(payload, key=key, properties=properties)
                sent += 1
                outstanding.add(future)
                if future.done() and not isinstance(future.exception(), SendError | None):
                    fatal = future.exception()  # the producer cannot send at all
                    break
        except KeyboardInterrupt:
            warn("interrupted: waiting for the acks of what was sent")
        # Every ack emitted before the producer completes its acks stream, then close.
        outstanding.wait(_ACK_WAIT)
        producer.on_completed()
        report.ended.wait(10.0)
    if fatal is not None:
        raise fatal
    if report.error is not None and report.failed == 0:
        raise report.error
    if report.unanswered:
        cause = f" ({one_line(str(report.error))})" if report.error else ""
        warn(f"{report.unanswered} messages got no answer before the producer closed{cause}")
    if args.quiet:
        print(f"stored {report.stored} message{'s' if report.stored != 1 else ''}", flush=True)
    if report.failed:
        warn(f"{report.failed} of {sent} messages failed")
        return 1
    return 0
