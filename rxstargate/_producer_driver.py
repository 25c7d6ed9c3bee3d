"""What runs behind a Producer's API: the producing core under a lock, its socket, its deliveries.

The core (``_produce_state``) decides; this driver waits, locks and moves things between
threads. One lock guards the core and the current connection; frames are only queued under it
(the connection's writer writes), and no user code runs under it. A settled message goes to
``send()``'s waiter or an operator's Relay at once, and to the acks thread (``_ackstream``) when
an observer, a future or a callback waits for it there; what nothing waits for there is
delivered on the spot.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future
from typing import Any

from marshmallow import Schema

from rxstargate._ackstream import AckCallback, AckStream, Handle, finish, relay_and_wake
from rxstargate._context import ClientContext
from rxstargate._frames import decode_producer_ack
from rxstargate._produce_state import Admission, ProduceState, Submission
from rxstargate._producer_link import ProducerLink, renewed
from rxstargate._slot_waiters import SlotWaiters
from rxstargate.exceptions import (
    ClosedError,
    ProtocolError,
    SendError,
    StargateError,
    StargateTimeoutError,
)
from rxstargate.models import ClientResult, ProducerAck, TopicName
from rxstargate.streams import StreamHandle

__all__ = ["ProducerDriver", "result_for"]

log = logging.getLogger("rxstargate.producer")


class WouldDeadlock(SendError):
    """A send from the producer's acks thread found no free slot."""


def result_for(error: StargateError) -> ClientResult:
    """The failed ack's result for a message that was not taken because of ``error``."""
    if isinstance(error, WouldDeadlock):
        return ClientResult.WOULD_DEADLOCK
    if isinstance(error, StargateTimeoutError):
        return ClientResult.TIMEOUT
    if isinstance(error, ClosedError):
        return ClientResult.CLOSED
    return ClientResult.CONNECTION_FAILED


class ProducerDriver:
    """The machinery of one producer (see the module docstring).

    Attributes:
        state: the producing core; read it freely, change it only under the lock.
        acks: the acks stream and the thread that delivers acks, futures and callbacks.
        link: the socket and its receive thread.
    """

    def __init__(
        self,
        context: ClientContext,
        topic: TopicName,
        query: dict[str, str],
        schema: Schema | None,
        max_in_flight: int,
    ) -> None:
        self._context = context
        self._topic = topic
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # slots freed, idle, or closed
        self.state: ProduceState[Handle] = ProduceState(
            max_in_flight, context.transport.max_send_bytes, schema
        )
        self.link = ProducerLink(
            context,
            context.url("producer", topic, None, query),
            topic,
            self._lock,
            self.state,
            self._acks_received,
            self._failed,
            self.closed_error,
        )
        self.acks = AckStream(topic.topic, self._delivered)
        self._slot_waiters = SlotWaiters()
        handle = StreamHandle("producer", topic, None, self._stop, self.wait_closed)
        self._key = context.register(handle)  # listed in client.streams until wait_closed()

    # -- sending ----------------------------------------------------------------------------

    def awaited_submission(
        self, value: Any, handle: Future[ProducerAck] | AckCallback
    ) -> Submission[Handle]:
        """``state.submission(value, handle)`` for a future or a callback, which the acks
        thread completes: it tells the acks stream so first (see ``AckStream.awaited``)."""
        self.acks.awaited = True
        return self.state.submission(value, handle)

    def submit(self, submission: Submission[Handle], wait: float | None) -> bool:
        """Admit ``submission``, waiting up to ``wait`` seconds for a slot, and send it.

        Returns False only when ``wait`` is None and no slot is free (nothing changed).

        Raises:
            StargateError: when it was not taken: the producer is closed (its failure,
                renewed), no slot came in time (StargateTimeoutError) or ever would (a send
                from the acks thread: SendError WOULD_DEADLOCK), or the socket cannot open.
        """
        if self.state.closed:
            raise self.closed_error()
        if submission.ack is None and not self.link.started:  # a refused one needs no socket
            self.link.ensure_open()
        with self._lock:
            admission = self.state.admit(submission)
            if admission is Admission.NO_SLOT:
                if wait is None:
                    return False
                admission = self._wait_for_slot(submission, wait)
            if admission is Admission.SEND:
                self.link.send(submission.frame)
                return True
            if admission is Admission.CLOSED:
                raise self.closed_error()
            if admission is Admission.HELD:
                return True
            here = self._hand_over([submission])
        self._finish_here([submission], here)
        return True

    def _wait_for_slot(self, submission: Submission[Handle], wait: float) -> Admission:
        """Under the lock: wait until ``submission`` is admitted (anything but NO_SLOT)."""
        max_in_flight = self.state.max_in_flight
        if self.acks.on_own_thread():
            raise WouldDeadlock(
                f"all {max_in_flight} send slots are taken and this send comes from the"
                " producer's own acks thread, whose deliveries free them: send from another"
                " thread, or raise max_in_flight",
                ClientResult.WOULD_DEADLOCK.value,
                submission.context,
            )
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StargateTimeoutError(
                    f"{max_in_flight} messages unacknowledged for {wait:.1f} s"
                )
            self._changed.wait(remaining)
            admission = self.state.admit(submission)
            if admission is not Admission.NO_SLOT:
                return admission

    async def slot_freed(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """Wait on ``loop`` (never blocking it) until a slot is freed, or ``timeout``."""
        await self._slot_waiters.wait(loop, timeout, lambda: self.state.slots_free > 0)

    def refuse(self, submission: Submission[Handle], error: StargateError) -> None:
        """``submission`` was not taken: it is a failed ack (to ``acks``, or its callback)."""
        with self._lock:
            self.state.refuse(submission, result_for(error), str(error))
            here = self._hand_over([submission])
        self._finish_here([submission], here)

    def closed_error(self) -> StargateError:
        """What a closed producer raises: its failure (renewed), or ClosedError."""
        failure = self.state.failure
        return ClosedError("the producer is closed") if failure is None else renewed(failure)

    def wait_idle(self, wait: float) -> None:
        """Wait until nothing is pending and every ack was delivered (see Producer.flush).

        Raises:
            StargateTimeoutError: when that did not happen within ``wait`` seconds.
        """
        state = self.state
        # The acks thread cannot wait for its own deliveries: from there, acks are enough.
        enough = self.acks.on_own_thread()
        with self._changed:
            if self._changed.wait_for(lambda: state.idle or (enough and not state.pending), wait):
                return
            if state.pending:
                raise StargateTimeoutError(
                    f"{state.pending} message(s) still unacknowledged after {wait:.1f} s"
                )
            raise StargateTimeoutError(
                f"acks not yet delivered to the acks observers after {wait:.1f} s"
            )

    # -- settling ---------------------------------------------------------------------------

    def _acks_received(self, texts: list[str]) -> None:
        """On the receive thread: settle what the broker answered."""
        frames = []
        for text in texts:
            try:
                frames.append(decode_producer_ack(text))
            except ProtocolError as exc:
                self._context.report(exc)
        settled: list[Submission[Handle]] = []
        problems: list[ProtocolError] = []
        with self._lock:
            # Read once for the batch: an observer that subscribes meanwhile sees the next.
            observed = self.acks.observed
            for frame in frames:
                outcome = self.state.acked(frame, not observed)
                if isinstance(outcome, Submission):
                    settled.append(outcome)
                elif outcome is not None:
                    problems.append(outcome)
            here = self._hand_over(settled, observed)
        self._finish_here(settled, here)
        for problem in problems:
            self._context.report(problem)

    def _hand_over(
        self, settled: list[Submission[Handle]], observed: bool | None = None
    ) -> list[Submission[Handle]]:
        """Under the lock: queue for the acks thread what something there waits for.

        The others are delivered now, and returned for :meth:`_finish_here`. ``observed``:
        whether ``acks`` had observers when ``settled`` was settled (None: look now).
        """
        here = self.acks.hand_over(settled, observed)
        if here:
            self.state.delivered(here)
            self._changed.notify_all()
        return here

    def _finish_here(
        self, settled: list[Submission[Handle]], here: list[Submission[Handle]]
    ) -> None:
        """After the lock: wake ``send()``s, relay acks, and finish what no thread took."""
        if relay_and_wake(settled) < len(settled):  # ``here`` is part of ``settled``
            for submission in here:
                handle = submission.handle
                if handle is None:
                    if submission.relay is None:
                        self._report_unseen(submission)
                else:
                    finish(submission)  # the acks stream ended (closed): complete it here
        if here:
            self._slot_waiters.wake_next(len(here))

    def _report_unseen(self, submission: Submission[Handle]) -> None:
        ack = submission.ack
        assert ack is not None
        if ack.ok:
            return
        error = SendError(
            f"a message for {self._topic} was not stored, and no acks observer saw it:"
            f" {ack.result} {ack.error_message or ''}".rstrip(),
            ack.result,
            ack.context,
        )
        # Once the producer failed for good, that failure was logged: each message it
        # takes down is still reported, without a warning each.
        self._context.report(error, log_it=self.state.failure is None)

    def _delivered(self, submissions: list[Submission[Handle]]) -> None:
        """On the acks thread: these were delivered; their slots are free."""
        with self._lock:
            self.state.delivered(submissions)
            self._changed.notify_all()
        self._slot_waiters.wake_next(len(submissions))

    # -- ending -----------------------------------------------------------------------------

    def _failed(self, error: StargateError) -> None:
        """On the receive thread: the producer cannot go on (it gave up reconnecting, say)."""
        log.warning("producer on %s failed: %s; it sends nothing more", self._topic, error)
        self.shutdown(error)

    def shutdown(self, error: Exception | None) -> None:
        """Close (failed with ``error``, when given) and wait for the threads."""
        self.begin_close(error)
        self.wait_closed(time.monotonic() + self._context.transport.close_timeout)

    def begin_close(self, error: Exception | None = None) -> None:
        """Fail what is pending, end ``acks`` after it, and begin closing the socket."""
        with self._lock:
            if self.state.closed:
                return
            leftover = self.state.close(error)
            here = self._hand_over(leftover)
            self.acks.end(error)
            self._changed.notify_all()
        self.link.stop()
        self._finish_here(leftover, here)
        self._slot_waiters.wake_all()  # waiting asend()s find the producer closed

    def _stop(self, complete: bool) -> None:
        self.begin_close()  # a producer always completes its acks

    def wait_closed(self, deadline: float) -> None:
        """Wait (until ``deadline``) for the receive thread and for every ack's delivery."""
        self.link.wait_stopped(deadline)
        self.acks.wait_ended(deadline)
        self._context.finished(self._key)

    def __repr__(self) -> str:
        state = "closed" if self.state.closed else "open" if self.link.connected else "new"
        return f"{state}, pending={self.state.pending}"
