"""The producing core: context ids, the pending table, send slots, resends and each message's fate.

:class:`ProduceState` has no thread, socket, lock or clock. Its methods take what happened (a
message handed over, an ack frame received, the connection lost or reopened, the producer
closed, an ack delivered to whoever waits for it) and return what to do: the frame to write,
the frames to write again, the messages whose fate is now settled. The driver
(``_producer.Producer``) owns the threads and the socket, and calls the core under its lock.

A message's life::

    submission() ──> admit() ──SEND/HELD──> pending ──acked() / close()──> settled ──delivered()
                        │                     ▲  └── lost() ... reopened(): sent again
                        └─REFUSED (or refuse())───────────────────────────> settled ──delivered()

Every message handed over is settled exactly once (acked, failed by the broker, refused, or
failed at close), and delivered once after that. A message holds a send slot from admission
until its ack was delivered, so no more than ``max_in_flight`` are ever pending, and a slow
``acks`` observer slows the producer down instead of letting acks pile up.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from enum import Enum
from typing import Any, Generic, TypeVar

from marshmallow import Schema

from rxstargate._frames import ProducerAckFrame, decode_producer_ack
from rxstargate._outgoing import encode_outgoing
from rxstargate.exceptions import ProtocolError, StargateError
from rxstargate.models import ClientResult, MessageId, OutgoingMessage, ProducerAck

__all__ = ["RELAYED_OK", "Admission", "ProduceState", "Submission", "failed_ack"]

H = TypeVar("H")

# A submission's stage; each moves forward only, one step at a time.
NEW, PENDING, SETTLED, DELIVERED = 0, 1, 2, 3


#: The ack of a relayed message the broker stored, when nothing will read more of it than
#: ``result`` (see :meth:`ProduceState.acked`): one shared object, where a ProducerAck and a
#: MessageId for each message cost a bridge 0.8 us a message and two objects for the collector.
RELAYED_OK = ProducerAck("", None, "ok")


class Admission(Enum):
    """What :meth:`ProduceState.admit` decided about a message."""

    SEND = "send"
    """Pending, with its slot: write its frame now."""
    HELD = "held"
    """Pending, with its slot, while the connection is down: ``reopened()`` sends it."""
    REFUSED = "refused"
    """It cannot be sent at all (bad payload, frame too large): settled with its failed ack."""
    NO_SLOT = "no-slot"
    """Every slot is taken: nothing changed; admit it again once an ack was delivered."""
    CLOSED = "closed"
    """The producer is closed: nothing changed."""


class Submission(Generic[H]):
    """One message handed to the producer.

    Attributes:
        context: its context id, unique within the producer, kept across reopens.
        frame: its encoded send frame; empty when it cannot be sent, and once settled (nothing
            sends it again, and its slot may be held a while longer by a slow ``acks``).
        correlation: the ``correlation`` of its OutgoingMessage, else None.
        handle: the driver's: whoever waits for its ack (opaque to the core).
        relay: the driver's: an operator given the ack with ``item`` where the message is
            settled, else None (opaque to the core; ``item`` is set only with it).
        ack: its fate once settled (ok, failed by the broker, refused or closed), else None;
            the shared :data:`RELAYED_OK` for a relayed message stored with nobody to see more.
        stage: NEW, PENDING, SETTLED or DELIVERED.
    """

    __slots__ = (
        "ack",
        "context",
        "correlation",
        "frame",
        "handle",
        "item",
        "relay",
        "slot",
        "stage",
    )

    def __init__(self, context: str, frame: bytes, correlation: Any, handle: H) -> None:
        self.context = context
        self.frame = frame
        self.correlation = correlation
        self.handle = handle
        self.relay: Any = None
        self.item: Any  # only with a relay: its slot stays empty otherwise
        self.ack: ProducerAck | None = None
        self.stage = NEW
        self.slot = False  # holds a send slot until delivered

    def __repr__(self) -> str:
        stage = ("new", "pending", "settled", "delivered")[self.stage]
        return f"Submission({self.context!r}, {stage}, {self.ack!r})"


def failed_ack(
    context: str, result: ClientResult, reason: str, correlation: Any = None
) -> ProducerAck:
    """The ack of a message that failed on the client's side (``result`` says why)."""
    return ProducerAck(context, None, result.value, reason, correlation)


class ProduceState(Generic[H]):
    """The Pulsar rules of one producer, with no I/O (see the module docstring).

    Args:
        max_in_flight: the most messages admitted and not yet delivered (at least 1; the
            client checks it).
        max_frame_bytes: the largest send frame the server takes.
        schema: the producer's marshmallow schema, if any.

    Example:
        >>> state = ProduceState(max_in_flight=2, max_frame_bytes=1024)
        >>> message = state.submission(b"hi", handle=None)
        >>> state.admit(message), state.reopened()
        (<Admission.HELD: 'held'>, [b'{"payload":"aGk=","context":"1"}'])
        >>> state.receive('{"result":"ok","messageId":"CAAQAw==","context":"1"}') is message
        True
        >>> message.ack.ok, state.idle
        (True, False)
        >>> state.delivered([message]); state.idle
        True
    """

    def __init__(
        self, max_in_flight: int, max_frame_bytes: int, schema: Schema | None = None
    ) -> None:
        self.max_in_flight = max_in_flight
        self._max_frame = max_frame_bytes
        self._schema = schema
        self._numbers = itertools.count(1)
        self._pending: dict[str, Submission[H]] = {}  # in admission order: the resend order
        self._slots_taken = 0
        self._undelivered = 0  # settled, not yet delivered
        self._connected = False
        self.closed = False
        #: The error the producer failed with for good (None while open or closed normally).
        self.failure: StargateError | None = None

    # -- what the driver reads ------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Messages sent (or held for the connection) and not answered yet."""
        return len(self._pending)

    @property
    def slots_free(self) -> int:
        """Slots left for new messages."""
        return self.max_in_flight - self._slots_taken

    @property
    def idle(self) -> bool:
        """True when nothing is pending and every settled message was delivered."""
        return not self._pending and not self._undelivered

    # -- messages in ----------------------------------------------------------------------

    def submission(self, value: Any, handle: H) -> Submission[H]:
        """Number ``value`` and encode its frame; nothing is admitted yet.

        A value that cannot be sent (wrong type, fails the schema, frame too large) gets its
        failed ack here; :meth:`admit` then settles it. Drawing a context id is atomic, so
        this may run outside the driver's lock (schemas run user code).
        """
        correlation = value.correlation if isinstance(value, OutgoingMessage) else None
        context = str(next(self._numbers))
        try:
            frame = encode_outgoing(value, context, self._schema).encode("utf-8")
        except Exception as exc:  # what a schema's dump raises is the user's: a failed message
            submission = Submission(context, b"", correlation, handle)
            submission.ack = failed_ack(
                context, ClientResult.INVALID_PAYLOAD, str(exc), correlation
            )
            return submission
        if len(frame) > self._max_frame:
            submission = Submission(context, b"", correlation, handle)
            reason = (
                f"the message frame is {len(frame)} bytes, over the server's limit of"
                f" {self._max_frame} bytes (payloads travel as base64 inside JSON)"
            )
            submission.ack = failed_ack(
                context, ClientResult.PAYLOAD_TOO_LARGE, reason, correlation
            )
            return submission
        return Submission(context, frame, correlation, handle)

    def admit(self, submission: Submission[H]) -> Admission:
        """Take a slot for ``submission`` and make it pending (see :class:`Admission`)."""
        if submission.stage != NEW:
            raise ValueError(f"{submission!r} was admitted or settled already")
        if self.closed:
            return Admission.CLOSED
        if submission.ack is not None:
            submission.stage = SETTLED
            self._undelivered += 1
            return Admission.REFUSED
        if self._slots_taken >= self.max_in_flight:
            return Admission.NO_SLOT
        self._slots_taken += 1
        submission.slot = True
        submission.stage = PENDING
        self._pending[submission.context] = submission
        return Admission.SEND if self._connected else Admission.HELD

    def refuse(self, submission: Submission[H], result: ClientResult, reason: str) -> None:
        """Settle a message that was never admitted as failed (no slot in time, closed, ...)."""
        if submission.stage != NEW:
            raise ValueError(f"{submission!r} was admitted or settled already")
        submission.ack = failed_ack(submission.context, result, reason, submission.correlation)
        submission.stage = SETTLED
        self._undelivered += 1

    # -- the broker's answers ---------------------------------------------------------------

    def receive(self, text: str) -> Submission[H] | ProtocolError | None:
        """Take one frame from the socket; see :meth:`acked`."""
        try:
            frame = decode_producer_ack(text)
        except ProtocolError as exc:
            return exc
        return self.acked(frame)

    def acked(
        self, frame: ProducerAckFrame, relayed_unseen: bool = False
    ) -> Submission[H] | ProtocolError | None:
        """Settle the pending message ``frame`` answers.

        With ``relayed_unseen`` (the driver's word that no ``acks`` observer will see this
        ack), a stored message that has a relay gets :data:`RELAYED_OK` as its ack: its relay
        reads only whether it failed.

        Returns:
            The settled message; a ProtocolError to report when the frame answers nothing
            pending with a failure or without a context; None for a second ``ok`` of a message
            sent again after a reopen, and for anything after close.
        """
        context = frame.context
        submission = self._pending.pop(context, None) if context is not None else None
        if submission is None:
            if self.closed or (context is not None and frame.result == "ok"):
                return None
            return ProtocolError(f"producer ack for no pending message: {context} {frame.result}")
        if relayed_unseen and submission.relay is not None and frame.result == "ok":
            submission.ack = RELAYED_OK
        else:
            mid = frame.message_id
            submission.ack = ProducerAck(
                submission.context,
                MessageId._from_wire(mid) if mid else None,
                frame.result,
                frame.error_msg,
                submission.correlation,
            )
        submission.frame = b""
        submission.stage = SETTLED
        self._undelivered += 1
        return submission

    # -- the connection ---------------------------------------------------------------------

    def lost(self) -> None:
        """The connection dropped: what is admitted now waits for :meth:`reopened`."""
        self._connected = False

    def reopened(self) -> list[bytes]:
        """A connection is open: the frames of every pending message to write on it.

        Oldest first, with their original context ids, so the broker answers each of them
        (a message stored before the drop may be stored again: delivery is at least once).
        Nothing after close.
        """
        if self.closed:
            return []
        self._connected = True
        return [submission.frame for submission in self._pending.values()]

    def close(self, error: Exception | None = None) -> list[Submission[H]]:
        """Close: every pending message is settled as failed, and returned (oldest first).

        ``error`` is why (None for a normal close); a StargateError becomes :attr:`failure`.
        Closing again returns nothing.
        """
        if self.closed:
            return []
        self.closed = True
        self._connected = False
        if isinstance(error, StargateError):
            self.failure = error
        if error is None:
            reason = "the producer was closed before the broker answered"
        else:
            reason = f"the producer failed before the broker answered: {error}"
        leftover = list(self._pending.values())
        self._pending.clear()
        for submission in leftover:
            submission.ack = failed_ack(
                submission.context, ClientResult.CLOSED, reason, submission.correlation
            )
            submission.frame = b""
            submission.stage = SETTLED
        self._undelivered += len(leftover)
        return leftover

    # -- delivery -----------------------------------------------------------------------------

    def delivered(self, submissions: Iterable[Submission[H]]) -> None:
        """Their acks reached whoever waited (observers, futures, callbacks): slots are free."""
        for submission in submissions:
            if submission.stage != SETTLED:
                raise ValueError(f"{submission!r} is not settled, or was delivered already")
            submission.stage = DELIVERED
            self._undelivered -= 1
            if submission.slot:
                submission.slot = False
                self._slots_taken -= 1
