"""The receiving core: credit, unsettled messages and a reader's position, with no I/O.

A receive state is Pulsar's side of one subscription, in the manner of h11, wsproto and
websockets' ``Protocol``: plain objects with no threads, sockets or clocks (time is passed
in). Its methods take what happened (a socket opened or dropped, message frames received, a
message delivered, settled or skipped, the observer's ``on_next`` returned, the stream
closed) and return what to do: the frames to send (permits, acks, nacks) and which messages
to deliver. The receiving driver (``_receiver``) owns the threads, the socket, the clock and
the observer; it makes every call under one lock and sends the frames returned, in order.

Two kinds, not a flag:

- :class:`ConsumerState`: Pulsar's pull mode. The server sends only what was permitted
  (``_flow.Credit``); settling a message (ack or nack) earns its permit back. A consumer's
  unsettled messages of a dropped socket can no longer be settled: the broker redelivers
  them, and settling one raises :class:`~rxstargate.AckError` (once).
- :class:`ReaderState`: the server's window is ``receiverQueueSize``; an ack returns one
  message's credit (a nack too: readers cannot ask for redelivery), and so does the
  observer's ``on_next`` returning. Its :class:`~rxstargate._reader_position.ReaderPosition`
  says where each socket opens and what to skip there.

Each socket gets a :class:`Ledger` from :meth:`ReceiveState.opened`, and messages settle
against the ledger of the socket they came from. At most ``max_in_flight`` messages of the
live socket are delivered and not yet settled; those of a dropped socket no longer count.

Example:
    >>> state = ConsumerState(4, batch=2)
    >>> ledger, frames = state.opened(now=0.0)
    >>> frames
    ('{"type":"permit","permitMessages":4}',)
    >>> state.deliver(ledger, "m1", "CAEQAA==")
    ()
    >>> state.settle(ledger, "m1", True, now=1.0)
    ('{"messageId":"CAEQAA=="}', None)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from typing import ClassVar

from rxstargate._flow import Credit
from rxstargate._frames import MessageFrame, encode_ack, encode_nack, encode_permit
from rxstargate._reader_position import ReaderPosition, Reopen
from rxstargate.exceptions import AckError

__all__ = ["ConsumerState", "Frames", "Ledger", "ReaderState", "ReceiveState", "Received", "Settle"]

#: Frames to send, in order (often none).
Frames = tuple[str, ...]
#: What settling returns: the ack (or nack) frame, and a permit frame when credit goes back.
Settle = tuple[str, str | None]
#: What receiving returns: the frames to deliver, and frames to send for those skipped.
Received = tuple[list[MessageFrame], Frames]

_NONE: Frames = ()
_RESUME = Reopen(None)


class Ledger:
    """The messages of one socket delivered and not yet settled; dead once it is gone.

    Attributes:
        unsettled: each delivered message's token (the driver's Message) to its wire id.
        alive: False once the socket dropped or the stream closed.
    """

    __slots__ = ("alive", "unsettled")

    def __init__(self, alive: bool = True) -> None:
        self.unsettled: dict[Hashable, str] = {}
        self.alive = alive

    def __repr__(self) -> str:
        state = "alive" if self.alive else "dead"
        return f"Ledger({state}, unsettled={len(self.unsettled)})"


class ReceiveState(ABC):
    """What consumers and readers share: the live ledger, settling, the stall watch.

    Attributes:
        max_in_flight: the most messages of the live socket delivered and not yet settled.
        ledger: the live socket's ledger (a dead, empty one before the first open).
        last_settled: when a message of the live socket was last settled, or it opened.
        closed: True once :meth:`close` was called.
    """

    kind: ClassVar[str] = "receiver"
    #: True when the broker redelivers what was not settled, so a settle lost on its way
    #: out is worth reporting (consumers); a reader's settles only return credit.
    redelivers: ClassVar[bool] = False

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self.ledger = Ledger(alive=False)
        self.last_settled = 0.0
        self.closed = False
        self._stall_reported = False

    # -- sockets ------------------------------------------------------------------------------

    def reopen(self) -> Reopen:
        """Where the next socket opens (the driver asks before each open)."""
        return _RESUME

    def opened(self, now: float) -> tuple[Ledger, Frames]:
        """A socket opened: its ledger, and the frames to send on it first.

        The previous socket's ledger is dead from now on.
        """
        self.ledger.alive = False
        self.ledger = Ledger()
        self.last_settled = now
        self._stall_reported = False
        return self.ledger, _NONE

    def lost(self, ledger: Ledger) -> int:
        """A socket dropped (or a send on it failed): how many of its messages it leaves unsettled.

        For a consumer those are the broker's to redeliver. Idempotent: 0 the second time.
        """
        if not ledger.alive:
            return 0
        ledger.alive = False
        return len(ledger.unsettled)

    def close(self) -> None:
        """The stream ends: nothing settles any more (a consumer's settles raise AckError)."""
        self.closed = True
        self.ledger.alive = False

    # -- messages -----------------------------------------------------------------------------

    def received(self, ledger: Ledger, frames: list[MessageFrame]) -> Received:
        """Message frames arrived on ``ledger``'s socket: those to deliver, and frames to send.

        Frames not to deliver have their credit returned by the frames to send.
        """
        return frames, _NONE

    @abstractmethod
    def skip(self, ledger: Ledger) -> Frames:
        """A frame that will not be delivered (it did not decode): return its credit."""

    @abstractmethod
    def deliver(self, ledger: Ledger, token: Hashable, message_id: str) -> Frames | None:
        """A message is about to be handed to the observer: frames to send, or None to drop it.

        ``token`` stands for the message in later calls (the driver's Message object).
        """

    @abstractmethod
    def settle(self, ledger: Ledger, token: Hashable, ack: bool, now: float) -> Settle | None:
        """A message was acked (``ack``) or nacked: the frames to send, None if nothing to do.

        Idempotent: None for a message settled before.
        """

    def returned(self, ledger: Ledger, token: Hashable, now: float) -> Settle | None:
        """The observer's ``on_next`` returned for this message: what to send, if anything."""
        return None

    # -- stalls -------------------------------------------------------------------------------

    @property
    def saturated(self) -> bool:
        """True when all credit is held: nothing more comes until a message is settled."""
        return False

    def stalled(self, now: float, limit: float) -> int | None:
        """How many messages are held when a stall is to be reported now, else None.

        A stall is all credit held with nothing settled for ``limit`` seconds; each stall is
        reported once.
        """
        if not self.saturated:
            self._stall_reported = False
            return None
        if self._stall_reported or now - self.last_settled < limit:
            return None
        self._stall_reported = True
        return len(self.ledger.unsettled)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(max_in_flight={self.max_in_flight}, {self.ledger!r},"
            f" closed={self.closed})"
        )


class ConsumerState(ReceiveState):
    """A pull-mode consumer: permits out, settles earn them back, dropped sockets redeliver."""

    kind = "consumer"
    redelivers = True

    def __init__(self, max_in_flight: int, batch: int | None = None) -> None:
        """``batch``: how many settles go back in one permit (a quarter of the window)."""
        super().__init__(max_in_flight)
        self._batch = batch
        self.credit = Credit(max_in_flight, batch)

    def opened(self, now: float) -> tuple[Ledger, Frames]:
        """A socket opened: it gets a fresh window, asked for with one permit."""
        ledger, _ = super().opened(now)
        self.credit = Credit(self.max_in_flight, self._batch)
        return ledger, (encode_permit(self.credit.initial()),)

    def skip(self, ledger: Ledger) -> Frames:
        if not ledger.alive:
            return _NONE
        # Counted as delivered and settled at once; both may grant credit back.
        permits = self.credit.delivered() + self.credit.settled()
        return (encode_permit(permits),) if permits else _NONE

    def deliver(self, ledger: Ledger, token: Hashable, message_id: str) -> Frames | None:
        if not ledger.alive:
            return None  # its socket is gone: the broker sends it again on the new one
        ledger.unsettled[token] = message_id
        permits = self.credit.delivered()
        return (encode_permit(permits),) if permits else _NONE

    def settle(self, ledger: Ledger, token: Hashable, ack: bool, now: float) -> Settle | None:
        message_id = ledger.unsettled.pop(token, None)
        if message_id is None:
            return None
        if not ledger.alive:
            raise AckError(
                f"message {message_id} came from a socket that is closed;"
                " the broker will redeliver it"
            )
        self.last_settled = now
        self._stall_reported = False  # the stall, if any, is over: the next one is reported
        permits = self.credit.settled()
        frame = encode_ack(message_id) if ack else encode_nack(message_id)
        return frame, encode_permit(permits) if permits else None

    @property
    def saturated(self) -> bool:
        return self.ledger.alive and len(self.ledger.unsettled) >= self.max_in_flight


class ReaderState(ReceiveState):
    """A reader: the server's window, acks that only return credit, and a position.

    Attributes:
        position: where the reader is; it decides where each socket opens.
    """

    kind = "reader"

    def __init__(self, max_in_flight: int, start: str) -> None:
        super().__init__(max_in_flight)
        self.position = ReaderPosition(start)

    def reopen(self) -> Reopen:
        return self.position.reopen()

    def received(self, ledger: Ledger, frames: list[MessageFrame]) -> Received:
        position = self.position
        if not position.skipping:  # the common case: everything, in order
            if frames:
                position.received(frames[-1].message_id)
            return frames, _NONE
        kept = [frame for frame in frames if position.received(frame.message_id)]
        skipped = len(frames) - len(kept)
        return kept, (encode_ack(""),) * skipped if ledger.alive else _NONE

    def skip(self, ledger: Ledger) -> Frames:
        return (encode_ack(""),) if ledger.alive else _NONE

    def deliver(self, ledger: Ledger, token: Hashable, message_id: str) -> Frames | None:
        if ledger.alive:
            ledger.unsettled[token] = message_id
        return _NONE  # a dropped socket's messages still come: the reader reopens after them

    def settle(self, ledger: Ledger, token: Hashable, ack: bool, now: float) -> Settle | None:
        message_id = ledger.unsettled.pop(token, None)
        if message_id is None or not ledger.alive:
            return None  # settled before, or its socket is gone: no credit to return
        self.last_settled = now
        return encode_ack(message_id), None

    def returned(self, ledger: Ledger, token: Hashable, now: float) -> Settle | None:
        return self.settle(ledger, token, True, now)
