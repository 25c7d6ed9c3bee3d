"""Where a reader is in its topic: its start, the last message received, and its pin.

A :class:`ReaderPosition` is plain state with named transitions, in the manner of
aiokafka's ``TopicPartitionState``: the receiving core (``_receive_state``) moves it, and
nothing else decides where a reader's socket opens. It is the natural home of a later seek.

Pulsar's reader endpoint starts after the ``messageId`` it is given (exclusive), at the
topic's first message for ``earliest`` and at its end when none is given (``latest``).
A reader from ``latest`` learns where that end was once its first socket is open (the
*pin*, from the admin API): should that socket drop before a message came, the reader
reopens at the pin instead of at ``latest`` again, which would skip what was published
meanwhile. The pin names an entry, and the broker sends that whole entry again (all of a
batch), so a socket opened there skips what it gets up to and including the pin's entry.

Example:
    >>> position = ReaderPosition("latest")
    >>> position.reopen()  # the first socket: at the topic's end
    Reopen(message_id=None)
    >>> position.pinned(MessageId("CAMQBw=="))  # learned right after it opened: entry 3:7
    >>> position.reopen()  # it dropped before any message: back at the pin, skipping to it
    Reopen(message_id='CAMQBw==')
    >>> [position.received(m) for m in ("CAMQBw==", "CAMQCA==")]  # entry 7 again, then 8
    [False, True]
    >>> position.reopen()  # from now on: after the last message received
    Reopen(message_id='CAMQCA==')
"""

from __future__ import annotations

from typing import NamedTuple

from rxstargate.models import MessageId

__all__ = ["EARLIEST", "LATEST", "ReaderPosition", "Reopen"]

EARLIEST = "earliest"
LATEST = "latest"


class Reopen(NamedTuple):
    """Where the next socket opens.

    Attributes:
        message_id: the ``messageId`` to open at (``earliest`` or a wire id), or None to
            open at the topic's end (no ``messageId``) or, for a consumer, where its
            subscription is.
    """

    message_id: str | None


class ReaderPosition:
    """The place of one reader in its topic, across its sockets.

    Attributes:
        start: where the reader was asked to start: ``earliest``, ``latest`` or a wire id.
        last_received: the wire id of the last message received (not skipped), or None.
        pin: where ``latest`` was when the reader first opened (a wire id, or ``earliest``
            for a topic that was empty), or None while unknown.
        skipping: the current socket was opened at the pin and nothing came past it yet.
    """

    __slots__ = ("_pin_entry", "last_received", "pin", "skipping", "start")

    def __init__(self, start: str) -> None:
        self.start = start
        self.last_received: str | None = None
        self.pin: str | None = None
        self._pin_entry: tuple[int, int] | None = None  # the pin's (ledger, entry)
        self.skipping = False

    @property
    def needs_pin(self) -> bool:
        """True while a reader from ``latest`` does not know where that was."""
        return self.start == LATEST and self.pin is None

    def pinned(self, last: MessageId | None) -> None:
        """Remember where ``latest`` was: the topic's last message, or None when it was empty.

        The receiving driver calls it once, after the reader's first socket opened.
        """
        if last is None:
            self.pin, self._pin_entry = EARLIEST, None  # an empty topic: all that comes is new
        else:
            self.pin, self._pin_entry = str(last), (last.ledger_id, last.entry_id)

    def reopen(self) -> Reopen:
        """Where the next socket opens; called before each open (the first one included).

        After the last message received when there is one, else at the pin, else at the
        start. Only a socket opened at the pin skips what the broker sends again up to it.
        """
        at = self.last_received or self.pin or self.start
        self.skipping = self.last_received is None and self._pin_entry is not None
        return Reopen(None if at == LATEST else at)

    def received(self, message_id: str) -> bool:
        """A message arrived on the current socket: False when it is to be skipped.

        Skipped: on a socket opened at the pin, what comes up to and including the pin's
        entry (it was there before the reader started). Anything else becomes the last
        message received.
        """
        if self.skipping and self._before_pin(message_id):
            return False
        self.skipping = False
        self.last_received = message_id
        return True

    def _before_pin(self, message_id: str) -> bool:
        try:
            fields = MessageId(message_id).fields
        except ValueError:
            return False
        assert self._pin_entry is not None
        return (fields.ledger_id, fields.entry_id) <= self._pin_entry

    def __repr__(self) -> str:
        return (
            f"ReaderPosition(start={self.start!r}, last_received={self.last_received!r},"
            f" pin={self.pin!r}, skipping={self.skipping})"
        )
