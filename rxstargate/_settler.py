"""Settling received messages on the socket they came from: acks, nacks and credit.

A :class:`Settler` belongs to one socket of one subscription. Settles from any thread only
queue frames on that socket; a settle queued before the socket dropped is reported (on
``client.errors`` and to an ``on_lost`` callback such as the acknowledger's) instead of being
lost silently. Consumers earn their credit back by settling (``_flow``); readers settle only to
return credit, so nothing is lost when a reader's socket is gone.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from rxstargate._context import ClientContext
from rxstargate._flow import Credit
from rxstargate._frames import encode_ack, encode_nack, encode_permit
from rxstargate._seam import Transport
from rxstargate.exceptions import AckError, StargateConnectionError
from rxstargate.models import Message

__all__ = ["OnLost", "Settler"]

#: Called with the AckError when a settle queued earlier never reached the socket.
OnLost = Callable[[AckError], None]


class Settler:
    """Settles the messages of one socket; dead once that socket is gone."""

    __slots__ = (
        "_conn",
        "_context",
        "_credit",
        "_lock",
        "_outstanding",
        "alive",
        "is_reader",
        "last_settled",
    )

    def __init__(self, conn: Transport, credit: Credit | None, context: ClientContext) -> None:
        self._conn = conn
        self._credit = credit
        self._context = context
        self._lock = threading.Lock()
        self._outstanding: dict[int, Message[Any]] = {}
        self.alive = True
        self.is_reader = credit is None
        self.last_settled = time.monotonic()

    def track(self, message: Message[Any]) -> None:
        """Count a message about to be delivered (the delivery thread calls it)."""
        with self._lock:
            self._outstanding[id(message)] = message
            permits = self._credit.delivered() if self._credit is not None else 0
            if permits and self.alive:
                with contextlib.suppress(StargateConnectionError):
                    self._conn.send(encode_permit(permits), urgent=False)

    def skip(self) -> None:
        """Give back the credit of a frame that could not be turned into a message."""
        with self._lock:
            if not self.alive:
                return
            if self._credit is None:
                frame = encode_ack("")
            else:
                self._credit.delivered()
                permits = self._credit.settled()
                if not permits:
                    return
                frame = encode_permit(permits)
            with contextlib.suppress(StargateConnectionError):
                self._conn.send(frame, urgent=False)

    def ack(self, message: Message[Any], on_lost: OnLost | None = None) -> None:
        self._settle(message, True, on_lost)

    def nack(self, message: Message[Any], on_lost: OnLost | None = None) -> None:
        self._settle(message, False, on_lost)

    def release(self, message: Message[Any]) -> None:
        """A reader's credit return once the observer is done with ``message``."""
        self._settle(message, True, None)

    def _settle(self, message: Message[Any], ack: bool, on_lost: OnLost | None) -> None:
        if id(message) not in self._outstanding:
            return  # settled before (a reader's release after its ack is the common case)
        wire_id = str(message.message_id)
        if self._credit is None:  # readers: the frame only returns credit
            frame, lost = encode_ack(wire_id), None
        else:
            frame = encode_ack(wire_id) if ack else encode_nack(wire_id)
            lost = functools.partial(self._lost, message, ack, on_lost)
        with self._lock:
            if self._outstanding.pop(id(message), None) is None:
                return  # settled before: idempotent
            self.last_settled = time.monotonic()
            if not self.alive:
                if self._credit is None:
                    return  # a reader's credit on a dead socket: nothing to lose
                raise AckError(
                    f"message {wire_id} came from a socket that is closed;"
                    " the broker will redeliver it"
                )
            permits = self._credit.settled() if self._credit is not None else 0
            try:
                self._conn.send(frame, urgent=False, on_lost=lost)
                if permits:
                    self._conn.send(encode_permit(permits), urgent=False)
            except StargateConnectionError as exc:
                self.alive = False
                if self._credit is None:
                    return
                raise AckError(f"cannot settle message {wire_id}: {exc}") from exc

    def _lost(self, message: Message[Any], ack: bool, on_lost: OnLost | None, reason: str) -> None:
        verb = "ack" if ack else "nack"
        error = AckError(
            f"the {verb} of message {message.message_id} on {message.topic} did not reach the"
            f" server ({reason}); the broker will redeliver it"
        )
        self._context.report(error)
        if on_lost is not None:
            on_lost(error)

    def kill(self) -> None:
        with self._lock:
            self.alive = False

    @property
    def unsettled(self) -> int:
        return len(self._outstanding)

    @property
    def saturated(self) -> bool:
        """True when a consumer holds all its credit: nothing more comes until it settles."""
        credit = self._credit
        return credit is not None and len(self._outstanding) >= credit.max_in_flight
