"""A producer's deliveries: its ``acks`` stream, and its sends' futures and callbacks.

Settled messages are handed over in the order they were settled (by the producer's receive
thread, by senders for messages refused before sending, by ``close()``) and delivered on the
"rxstargate-acks-<topic>" thread, started once something needs it: ``acks`` observers see each
ack, then the message's future completes or its ``send_then`` callback runs. Then
``delivered`` is told, which frees their send slots, so a slow observer slows the producer down
instead of letting acks pile up, and ``flush()`` returns only once every ack was delivered.

None of these runs on the producer's receive thread: an observer, a future's done-callback or a
``send_then`` callback may call ``send()``, which waits for the receive thread, not for them.
The exception is a :class:`Relay` (``publish()``'s), which only hands acks on to a thread of its
own: it gets them on the thread that settles its messages, several at once.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, TypeAlias

from reactivex import Observable

from rxstargate._fanout import Fanout
from rxstargate._produce_state import Submission
from rxstargate.exceptions import SendError
from rxstargate.models import ProducerAck

__all__ = [
    "AckCallback",
    "AckStream",
    "AckWaiter",
    "Handle",
    "Relay",
    "finish",
    "relay_and_wake",
    "send_error_for",
]

log = logging.getLogger("rxstargate.producer")

#: Called with a message's ack (ok or failed) on the producer's acks thread.
AckCallback = Callable[[ProducerAck], None]


class AckWaiter:
    """What a blocking ``send()`` waits on, set once by the thread that settles its message.

    A bare lock, held until then: waking the sender takes one release, where a
    ``threading.Event`` takes a condition and its locks on both sides (a few microseconds of a
    round trip that is mostly the wake-up itself).
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()

    def set(self) -> None:
        """Let the sender go; setting it again changes nothing."""
        with contextlib.suppress(RuntimeError):  # already released, not yet taken
            self._lock.release()

    def wait(self, timeout: float) -> bool:
        """Whether it was set within ``timeout`` seconds."""
        return self._lock.acquire(timeout=timeout)


class Relay(Protocol):
    """Takes its messages' acks on the thread that settles them, instead of on the acks thread.

    For an operator whose callback only hands acks on to a thread of its own (``publish``):
    the acks skip a thread hop. Each message it waits for is sent with no handle, the relay
    and its item in the Submission's own ``relay`` and ``item``. :meth:`relayed` runs outside
    the producer's lock, once for each run of its messages settled together, on the
    producer's receive thread (on a sender's thread for a message refused before it was sent,
    on ``close()``'s for those failed then), so it must be short and never block or send;
    what it raises is logged. ``acks`` observers, if any, still see the acks on the acks
    thread, in no particular order with :meth:`relayed`, and the messages' slots are free once
    they did; without them, once settled: the operator's own input (a stream's credit) bounds
    what it holds then.
    """

    def relayed(self, items: list[Any], failed: list[tuple[int, ProducerAck]]) -> None:
        """Messages sent for ``items`` were settled, in this order; ``failed`` holds the
        failed ones' acks with their index in ``items`` (in order; usually empty)."""


def relay_and_wake(settled: list[Submission[Handle]]) -> int:
    """Hand settled messages' acks to their relays, one call for each run of one relay, and
    let their blocked ``send()``s go; how many of ``settled`` that took care of.

    One walk for both: a bridge's producer settles a batch of relayed messages at a time.
    Only failed acks are passed on (an ok one says nothing its item does not): reading each
    ack's ``ok`` property again in the relay cost a call a message.
    """
    current: Relay | None = None
    items: list[Any] = []
    failed: list[tuple[int, ProducerAck]] = []
    done = 0
    for submission in settled:
        relay = submission.relay
        if relay is not None:
            if relay is not current:
                if current is not None:
                    done += len(items)
                    _relay(current, items, failed)
                    items, failed = [], []
                current = relay
            ack = submission.ack  # settled: never None
            if ack.result != "ok":  # type: ignore[union-attr]  # ``ack.ok``, without a call
                failed.append((len(items), ack))  # type: ignore[arg-type]
            items.append(submission.item)
        elif type(submission.handle) is AckWaiter:  # it has no subclasses: no isinstance()
            submission.handle.set()
            done += 1
    if current is not None:
        done += len(items)
        _relay(current, items, failed)
    return done


def _relay(relay: Relay, items: list[Any], failed: list[tuple[int, ProducerAck]]) -> None:
    try:
        relay.relayed(items, failed)
    except Exception:
        log.exception("an ack relay raised")


#: Who waits for a message's ack: ``send()`` (an AckWaiter, set by the thread that settles it),
#: ``send_async``/``asend`` (a Future), ``send_then`` (a callback), or nobody but ``acks`` (or
#: an operator's Relay, which the Submission holds in its own ``relay``).
Handle: TypeAlias = "AckWaiter | Future[ProducerAck] | AckCallback | None"

#: Slots are given back after this many deliveries, or sooner when nothing else is queued.
_GIVE_BACK_EVERY = 64


class _End:
    __slots__ = ("error",)

    def __init__(self, error: Exception | None) -> None:
        self.error = error


def send_error_for(ack: ProducerAck) -> SendError:
    """The SendError that stands for a failed ack."""
    return SendError(
        f"message {ack.context} failed: {ack.result} {ack.error_message or ''}".rstrip(),
        ack.result,
        ack.context,
    )


def finish(submission: Submission[Handle]) -> None:
    """Complete a settled message's future, or run its callback (whatever it raises is logged).

    A Relay was given its ack where the message was settled: nothing is left to do.
    """
    ack = submission.ack
    assert ack is not None
    handle = submission.handle
    if isinstance(handle, Future):
        if handle.set_running_or_notify_cancel():
            if ack.ok:
                handle.set_result(ack)
            else:
                handle.set_exception(send_error_for(ack))
    elif handle is not None and not isinstance(handle, AckWaiter):
        try:
            handle(ack)
        except Exception:
            log.exception("an ack callback raised")


class AckStream:
    """The ``acks`` of one producer and the futures and callbacks of its sends.

    Args:
        name: the topic, for the thread's name.
        delivered: told (on the acks thread) which messages were delivered.
    """

    def __init__(self, name: str, delivered: Callable[[list[Submission[Handle]]], None]) -> None:
        self._name = name
        self._delivered = delivered
        self._fanout: Fanout[ProducerAck] = Fanout()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ended = False
        #: Set (for good) before the first message a future or a callback waits for is
        #: submitted: until then, with no observer, nothing is for the acks thread, and
        #: :meth:`hand_over` need not look at each message (a bridge's producer never sets it).
        self.awaited = False

    def observable(self) -> Observable[ProducerAck]:
        """The hot stream of acks."""
        return self._fanout.observable()

    def on_own_thread(self) -> bool:
        """True when called from an observer, a future's done-callback or a callback."""
        return self._thread is threading.current_thread()

    @property
    def observed(self) -> bool:
        """True while ``acks`` has observers."""
        return self._fanout.observed

    def hand_over(
        self, settled: list[Submission[Handle]], observed: bool | None = None
    ) -> list[Submission[Handle]]:
        """Queue for the acks thread the settled messages something there waits for.

        Returns the others, in order: those nothing waits for (no observer, and no future
        or callback), or all of them once the stream ended. The caller finishes those and
        counts them delivered. The producer calls this and :meth:`end` under its lock, so
        nothing is handed over after the end. One batch is one hand-off to the thread.
        ``observed`` is :attr:`observed` when ``settled`` was settled (None: now): a batch
        settled for no observer, whose relayed acks may be ``RELAYED_OK``, never reaches one.
        """
        if self._ended or not settled:
            return settled
        rest: list[Submission[Handle]] = []
        if self._fanout.observed if observed is None else observed:
            taken = settled
        elif not self.awaited:
            return settled  # no future or callback was ever submitted: nothing waits there
        else:
            taken = []
            for submission in settled:
                handle = submission.handle
                if handle is None or type(handle) is AckWaiter:  # a relay's has none
                    rest.append(submission)
                else:
                    taken.append(submission)
            if not taken:
                return rest
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"rxstargate-acks-{self._name}", daemon=True
            )
            self._thread.start()
        self._queue.put(taken)
        return rest

    def end(self, error: Exception | None) -> None:
        """Complete (or fail) the stream after what was handed over so far."""
        self._ended = True
        self._queue.put(_End(error))

    def wait_ended(self, deadline: float) -> None:
        """Wait for the acks thread to deliver everything and the end (never past ``deadline``)."""
        thread = self._thread
        if thread is None:  # nothing was ever handed over: at most the end is queued
            try:
                end = self._queue.get_nowait()
            except queue.Empty:
                return  # ended before
            self._fanout.end(end.error)
        elif thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        fanout = self._fanout
        done: list[Submission[Handle]] = []
        while True:
            try:
                item = self._queue.get(block=not done)
            except queue.Empty:  # caught up: give the slots back
                self._delivered(done)
                done = []
                continue
            if isinstance(item, _End):
                if done:
                    self._delivered(done)
                fanout.end(item.error)
                return
            for submission in item:
                if fanout.observed:
                    fanout.on_next(submission.ack)
                if submission.handle is not None:
                    finish(submission)
                done.append(submission)
                if len(done) >= _GIVE_BACK_EVERY:
                    self._delivered(done)
                    done = []
