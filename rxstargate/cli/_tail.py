"""``rxstargate tail``: print a topic's messages as a reader, or consume and ack them.

Messages are printed on the stream's delivery thread; the main thread only waits, watches for
silence (``--idle``) and turns Ctrl-C into a clean close of the socket.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import rxstargate as rs
from rxstargate.cli._common import CommandError, Endpoint, sigterm_as_interrupt, warn
from rxstargate.cli._output import Render, Stdout, compile_format, render_json, silence_stdout
from rxstargate.exceptions import HandshakeError, ProtocolError

__all__ = ["parse_start", "run_tail"]

#: Refusals of the admin API after which --exit falls back to silence.
_NO_ADMIN = {401, 403, 404, 405}


def parse_start(text: str) -> str | int | rs.MessageId:
    """An argparse type: ``latest``, ``earliest``, ``-N`` (the last N) or a message id."""
    if text in ("latest", "earliest"):
        return text
    if text.startswith("-") and text[1:].isdigit():
        count = int(text[1:])
        if count < 1:
            raise argparse.ArgumentTypeError("--start -N needs N of at least 1")
        return count
    try:
        message_id = rs.MessageId(text)
        _ = message_id.fields
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--start is latest, earliest, -N or a message id (base64, as tail prints it with"
            f" %i), not {text!r}"
        ) from None
    return message_id


def reached(message_id: rs.MessageId, last: rs.MessageId) -> bool:
    """Whether ``message_id`` is ``last`` or after it (a batch counts once it is all read)."""
    try:
        got, end = message_id.fields, last.fields
    except ValueError:
        return False
    if (got.ledger_id, got.entry_id) != (end.ledger_id, end.entry_id):
        return (got.ledger_id, got.entry_id) > (end.ledger_id, end.entry_id)
    if end.batch_index >= 0:
        return got.batch_index >= end.batch_index
    return got.batch_index < 0 or got.batch_size <= 0 or got.batch_index >= got.batch_size - 1


@dataclass(frozen=True)
class _Plan:
    """Where the read starts and what ends it, decided before the socket opens."""

    start: str | rs.MessageId | None
    last: rs.MessageId | None  # the end of the topic when the tail began, if known
    use_idle: bool  # silence for --idle seconds also means "caught up"
    backlog: int | None  # print only the last N read before catching up
    nothing_to_read: bool  # with --exit: done before reading anything
    note: str | None = None  # said once the read is under way (not if the socket is refused)
    empty: bool = False  # the server says the topic holds no message at all


class _Tail:
    """What one tail has printed and whether it is done; fed from the delivery thread."""

    def __init__(
        self,
        args: argparse.Namespace,
        plan: _Plan,
        render: Render,
        matches: Callable[[rs.Message[Any]], bool],
    ) -> None:
        self.done = threading.Event()
        self.error: Exception | None = None
        self.broken_pipe = False
        self._out = Stdout()
        self._render = render
        self._matches = matches
        self._count: int | None = args.count
        self._exit_at_end: bool = args.exit
        self._consumer = args.subscription is not None
        self._plan = plan
        self._idle: float = args.idle
        self._lock = threading.Lock()
        self._printed = 0
        self._quiet_since = time.monotonic()
        self._buffer: deque[rs.Message[Any]] | None = (
            deque(maxlen=plan.backlog) if plan.backlog else None
        )
        self._note = plan.note

    def say_note(self) -> None:
        """Print the plan's note once: the read is under way (or ended without an error)."""
        note, self._note = self._note, None
        if note is not None:
            warn(note)

    # -- delivery thread ---------------------------------------------------------------------

    def on_next(self, message: rs.Message[Any]) -> None:
        with self._lock:
            self.say_note()
            self._quiet_since = time.monotonic()
            if self.done.is_set():
                return  # not printed, so not acked: a consumer gets it again later
            at_end = self._plan.last is not None and reached(message.message_id, self._plan.last)
            if self._buffer is not None:
                self._buffer.append(message)
                if at_end:
                    self._flush()
            else:
                self._emit(message)
            if at_end and self._exit_at_end:
                self.done.set()
        if self._consumer:
            with contextlib.suppress(rs.AckError):  # its socket is gone: it comes again
                message.ack()

    def on_error(self, error: Exception) -> None:
        self.error = error
        self.done.set()

    def on_completed(self) -> None:
        self.done.set()

    def _emit(self, message: rs.Message[Any]) -> None:
        if self.done.is_set() or not self._matches(message):
            return
        try:
            self._out.write(self._render(message))
        except BrokenPipeError:
            self.broken_pipe = True
            self.done.set()
            return
        self._printed += 1
        if self._count is not None and self._printed >= self._count:
            self.done.set()

    def _flush(self) -> None:
        buffered, self._buffer = self._buffer or deque(), None
        for message in buffered:
            self._emit(message)

    # -- main thread -------------------------------------------------------------------------

    def tick(self) -> None:
        """Count silence: after --idle seconds without messages, treat the read as caught up."""
        with self._lock:
            if time.monotonic() - self._quiet_since < self._idle:
                return
            if self.error is None:
                self.say_note()  # silent, yet not refused: the read is under way
            if self._buffer is not None and (self._buffer or self._plan.use_idle):
                self._flush()  # a known end that never came: show what was read
            if self._plan.use_idle and self._exit_at_end:
                self.done.set()


def _matcher(args: argparse.Namespace) -> Callable[[rs.Message[Any]], bool]:
    key: str | None = args.key
    wanted: dict[str, str] = dict(args.property or [])

    def matches(message: rs.Message[Any]) -> bool:
        if key is not None and message.key != key:
            return False
        return all(message.properties.get(name) == value for name, value in wanted.items())

    return matches


def _last_id(
    topic: rs.Topic, args: argparse.Namespace
) -> tuple[rs.MessageId | None, bool, str | None]:
    """The topic's last message id, whether it is known (the admin API may refuse), and the
    note to print about the fallback once the read itself is under way."""
    try:
        return topic.last_message_id(), True, None
    except (HandshakeError, ProtocolError) as exc:
        if isinstance(exc, HandshakeError) and exc.status_code not in _NO_ADMIN:
            raise
        reason = f"HTTP {exc.status_code}" if isinstance(exc, HandshakeError) else str(exc)
        note = (
            f"the server will not say where the topic ends (lastMessageId: {reason}): taking"
            f" {args.idle:g} s without a message as the end"
        )
        return None, False, note


def _plan(topic: rs.Topic, args: argparse.Namespace) -> _Plan:
    start = args.start
    backlog: int | None = args.last
    if isinstance(start, int):
        backlog, start = start, None
    if not args.exit and backlog is None:
        return _Plan(start, None, False, None, False)
    consumer = args.subscription is not None
    last, known, note = _last_id(topic, args)
    if args.exit and not consumer and backlog is None and start in (None, "latest"):
        if known:  # only new messages, and none wanted: done, unless the topic is empty
            return _Plan(start, None, False, None, True, empty=last is None)
        # The admin API refused: the reader's own handshake says whether the topic can be read.
        return _Plan(start, None, True, None, False, note)
    if known and last is None:  # an empty topic
        return _Plan("earliest" if backlog else start, None, False, None, args.exit, empty=True)
    if backlog is not None:
        start = "earliest"
        if last is not None and last.entry_id >= backlog:
            # Entries of one ledger are numbered without gaps, and each holds one message or
            # more: reading after entry E-N yields at least the last N messages.
            start = rs.MessageId.from_parts(last.ledger_id, last.entry_id - backlog, last.partition)
        return _Plan(start, last, not known, backlog, False, note)
    if isinstance(start, rs.MessageId) and last is not None and reached(start, last):
        return _Plan(start, last, False, None, True)
    return _Plan(start, last, consumer or not known, None, False, note)


def _stream(topic: rs.Topic, args: argparse.Namespace, plan: _Plan) -> rs.Stream[Any]:
    if args.subscription is None:
        return topic.observe(start=plan.start)
    return topic.observe(
        args.subscription,
        subscription_type=args.subscription_type,
        start=plan.start,
    )


def _render(args: argparse.Namespace) -> Render:
    if args.json:
        return render_json
    try:
        return compile_format(args.format if args.format is not None else "%s\\n")
    except ValueError as exc:
        raise CommandError(f"--format: {exc}", 2) from None


def run_tail(args: argparse.Namespace, where: Endpoint) -> int:
    """Run ``rxstargate tail``; returns the exit status.

    Raises:
        CommandError: for an option that does not fit.
        StargateError: when the topic cannot be read.
    """
    if args.subscription is None and args.subscription_type is not None:
        raise CommandError("--subscription-type needs --subscription", 2)
    if args.last is not None and args.start is not None:
        raise CommandError("--last and --start exclude each other", 2)
    if args.subscription is not None and (
        args.last is not None or not isinstance(args.start, str | None)
    ):
        raise CommandError(
            "a subscription starts at earliest or latest (where it is new) or where it left"
            " off: --last, -N and message ids need a reader (no --subscription)",
            2,
        )
    render = _render(args)
    assert where.url is not None
    try:
        with sigterm_as_interrupt(), rs.Client(where.url, token=where.token) as client:
            topic = client.topic(args.topic)
            plan = _plan(topic, args)
            if plan.nothing_to_read and plan.empty:
                # What a misspelt name gives on a server that creates topics on first use.
                raise CommandError(
                    f"no messages in {topic.name}: it was never written (or keeps none)"
                )
            if plan.nothing_to_read:
                return 0
            tail = _Tail(args, plan, render, _matcher(args))
            subscription = _stream(topic, args, plan).subscribe(
                tail.on_next, tail.on_error, tail.on_completed
            )
            try:
                while not tail.done.wait(0.05):
                    tail.tick()
            finally:
                subscription.dispose()
    except KeyboardInterrupt:
        return 0  # Ctrl-C or SIGTERM: the usual way to stop following; the socket is closed now
    if tail.broken_pipe:
        silence_stdout()
    if tail.error is not None:
        raise tail.error
    tail.say_note()
    return 0
