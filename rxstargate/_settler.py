"""Settling received messages on the socket they came from: acks, nacks and credit.

A :class:`Settler` is a message's way back to the socket it came from (``Message._settler``):
one per socket of a subscription. It asks the stream's receive state (``_receive_state``,
under the stream's lock) what to send, and queues that on the socket. Settles from any
thread only queue frames; a consumer's settle queued before its socket dropped is reported
(on ``client.errors`` and to an ``on_lost`` callback such as the acknowledger's) instead of
being lost silently. A reader's settles only return credit, so nothing is lost when a
reader's socket is gone.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from rxstargate._context import ClientContext
from rxstargate._frames import MessageFrame
from rxstargate._receive_state import Frames, Ledger, ReceiveState
from rxstargate._seam import LostCallback, Transport
from rxstargate.exceptions import AckError, StargateConnectionError
from rxstargate.models import Message, TopicName

__all__ = ["OnLost", "Settler"]

#: Called with the AckError when a settle queued earlier never reached the socket.
OnLost = Callable[[AckError], None]


class Settler:
    """Settles the messages of one socket; dead once that socket is gone."""

    __slots__ = (
        "_conn",
        "_context",
        "_ledger",
        "_lock",
        "_redelivers",
        "_report",
        "_state",
        "settles_on_return",
        "unsettled",
    )

    def __init__(
        self,
        state: ReceiveState,
        ledger: Ledger,
        conn: Transport,
        lock: threading.Lock,
        context: ClientContext,
    ) -> None:
        self._state = state
        self._ledger = ledger
        self._conn = conn
        self._lock = lock  # the stream's: it guards the receive state
        self._context = context
        self._redelivers = state.redelivers
        #: The socket's messages delivered and not yet settled (read without the lock).
        self.unsettled = ledger.unsettled
        #: Whether :meth:`returned` does anything: a reader's credit comes back when the
        #: observer returns; a consumer's only when it settles, so it skips the lock round.
        self.settles_on_return = type(state).returned is not ReceiveState.returned
        # What the socket calls with a lost settle's frame: made again only when the topic or
        # the caller's ``on_lost`` changes, not for each settle (one object fewer an ack for
        # the collector, and cheaper than building one). A multi-topic stream's messages name
        # their own topic, so it is one of the arguments.
        self._report = functools.partial(self._lost, cast(TopicName, None), None)  # no topic yet

    @property
    def alive(self) -> bool:
        """False once the socket dropped or the stream closed."""
        return self._ledger.alive

    @property
    def lapsed(self) -> bool:
        """True once a consumer's socket is gone: the broker redelivers what it left unsettled,
        so its messages can no longer be settled and working on them is wasted (a reader's
        never lapse: nothing sends them again)."""
        return self._redelivers and not self._ledger.alive

    @property
    def saturated(self) -> bool:
        """True when a consumer holds all its credit: nothing more comes until it settles."""
        return self._state.saturated

    # -- the receive thread ----------------------------------------------------------------

    def received(self, frames: list[MessageFrame]) -> list[MessageFrame]:
        """The frames of one read that are to be delivered; the others' credit goes back."""
        with self._lock:
            kept, frames_out = self._state.received(self._ledger, frames)
            self._send(frames_out)
        return kept

    def skip(self) -> None:
        """Give back the credit of a frame that could not be turned into a message."""
        with self._lock:
            self._send(self._state.skip(self._ledger))

    def lost(self) -> int:
        """The socket is gone: how many of its messages were left unsettled."""
        with self._lock:
            return self._state.lost(self._ledger)

    # -- the delivery thread ---------------------------------------------------------------

    def deliver(self, message: Message[Any], message_id: str) -> bool:
        """Count a message about to be delivered; False when it must not be (socket gone)."""
        lock = self._lock
        lock.acquire()  # not ``with``: half its cost (0.07 against 0.15 us a round)
        try:
            frames = self._state.deliver(self._ledger, message, message_id)
            if frames:
                self._send(frames)
        finally:
            lock.release()
        return frames is not None

    def returned(self, message: Message[Any]) -> None:
        """The observer's ``on_next`` returned: a reader's credit goes back now.

        The driver calls it only for a message still in :attr:`unsettled`.
        """
        with self._lock:
            settle = self._state.returned(self._ledger, message, time.monotonic())
            if settle is not None:  # a reader's ack: it only returns credit
                frame, permit = settle
                self._send((frame,) if permit is None else (frame, permit))

    # -- any thread ------------------------------------------------------------------------

    def ack(self, message: Message[Any], on_lost: OnLost | None = None, ack: bool = True) -> None:
        """Acknowledge ``message`` (``ack`` False: what :meth:`nack` does); idempotent.

        One method for both, not two that call a third: a call less for every ack.

        Raises:
            AckError: for a consumer's message whose socket is gone.
        """
        wire_id = self.unsettled.get(message)
        if wire_id is None:
            return  # settled before: idempotent
        ledger, state = self._ledger, self._state
        # Only a consumer's settle is worth reporting when lost: the broker redelivers. What
        # reports it holds no Message (freed as soon as its user is done with it instead of
        # waiting with the frame to be written): the socket hands it back the frame.
        lost: LostCallback | None = None
        if self._redelivers:
            lost = self._report
            made_for = lost.args
            if made_for[0] is not message.topic or made_for[1] is not on_lost:
                lost = self._report = functools.partial(self._lost, message.topic, on_lost)
        lock = self._lock
        lock.acquire()  # not ``with``: half its cost, as in deliver()
        try:
            settle = state.settle(ledger, message, ack, time.monotonic())
            if settle is None:
                return
            frame, permit = settle
            try:
                self._conn.send(frame, urgent=False, on_lost=lost)
                if permit is not None:
                    self._conn.send(permit, urgent=False)
            except StargateConnectionError as exc:
                state.lost(ledger)
                if self._redelivers:
                    raise AckError(f"cannot settle message {message.message_id}: {exc}") from exc
        finally:
            lock.release()

    def nack(self, message: Message[Any], on_lost: OnLost | None = None) -> None:
        """Ask for redelivery of ``message`` (a reader's only returns credit); idempotent.

        Raises:
            AckError: for a consumer's message whose socket is gone.
        """
        self.ack(message, on_lost, False)

    def _send(self, frames: Frames) -> None:
        for frame in frames:
            with contextlib.suppress(StargateConnectionError):
                self._conn.send(frame, urgent=False)

    def _lost(
        self, topic: TopicName, on_lost: OnLost | None, frame: str | bytes, reason: str
    ) -> None:
        """Report the settle ``frame`` (an ack or a nack this settler sent) lost."""
        sent = json.loads(frame)
        verb = "nack" if sent.get("type") == "negativeAcknowledge" else "ack"
        error = AckError(
            f"the {verb} of message {sent['messageId']} on {topic} did not reach the"
            f" server ({reason}); the broker will redeliver it"
        )
        self._context.report(error)
        if on_lost is not None:
            on_lost(error)
