"""Readers and consumers as cold Observables of Messages, with credit-based backpressure.

The Pulsar rules (credit, unsettled messages, a reader's position) live in the receiving
core, ``_receive_state``; this module drives it with threads, a socket and the observer.
Each subscription has a delivery thread, and a feed (``_receiver_feed``) that brings frames:

- the feed's thread ("rxstargate-consumer-<topic>" / "rxstargate-reader-<topic>") connects,
  reads and decodes frames and reconnects after a drop; it never runs user code, so pongs and
  closes are read on time however slow the pipeline is. On a transport that reads by itself
  (the I/O loop) it lives only while a socket opens;
- the delivery thread ("rxstargate-delivery-<topic>") turns frames into Messages and calls the
  observer, one call at a time, terminal events included. A callback that raises ends the
  subscription with ``on_error`` (that exception), never up into rxstargate.

The queue between them holds at most what the server may send: consumers use Pulsar's pull
mode, so the server sends only what was permitted, and settling a message (ack or nack) earns
its permit back. A reader's window is ``receiverQueueSize``; its credit comes back when the
observer's ``on_next`` returns, or on ``ack()``/``nack()`` if that comes first.

Disposing the subscription closes its socket (no terminal event); closing the client
completes it. Either way the callback in progress may still settle its message: the socket
closes once it returns (or at half the close deadline). Messages of a dropped socket that were
not delivered yet are skipped (the broker redelivers them on the new socket); acks for them
raise :class:`~rxstargate.AckError`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from typing import Any

from reactivex import abc

from rxstargate._context import ClientContext
from rxstargate._frames import MessageFrame
from rxstargate._message_factory import MessageFactory
from rxstargate._receiver_feed import Batch, Feed, NormalClose
from rxstargate._receiver_spec import ReceiverSpec
from rxstargate._settler import Settler
from rxstargate.exceptions import (
    AckError,
    ProtocolError,
    SchemaError,
    StalledStreamError,
    StargateError,
)
from rxstargate.models import Message
from rxstargate.streams import Stream, StreamHandle

__all__ = ["ReceiverSpec", "observe"]

log = logging.getLogger("rxstargate.receiver")


class _End:
    """The delivery queue's last item: complete (error None) or fail."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None) -> None:
        self.error = error


class _Session:
    """One subscription: a feed brings its frames; its delivery thread calls the observer."""

    def __init__(
        self, context: ClientContext, spec: ReceiverSpec, observer: abc.ObserverBase[Message[Any]]
    ) -> None:
        self._context = context
        self._spec = spec
        self._observer = observer
        self._state = spec.new_state()
        self._messages = MessageFactory(context, spec.topic, spec.schema)
        self._stopped = threading.Event()  # no more connecting or delivering
        self._lock = threading.Lock()  # guards the receive state and the live socket
        self._queue: queue.SimpleQueue[Batch | _End] = queue.SimpleQueue()
        self._terminated = False
        self._ending = False  # the delivery thread skips messages and waits for _End
        self._parts_left = 2  # feed and delivery: the stream is finished when both end
        kind, name = self._state.kind, spec.topic.topic
        self._delivery = threading.Thread(
            target=self._delivery_loop, name=f"rxstargate-delivery-{name}", daemon=True
        )
        self.handle = StreamHandle(
            kind, spec.topic, spec.subscription, self.begin_close, self.wait_closed
        )
        self._key = context.register(self.handle)
        self._feed = Feed(
            context,
            spec,
            self._state,
            self._lock,
            self._stopped,
            self._queue.put,
            self._fail,
            self._part_ended,
            self.handle,
            self._key,
        )

    def start(self) -> None:
        self._delivery.start()
        self._feed.start()

    # -- ending ------------------------------------------------------------------------------

    def dispose(self) -> None:
        """Rx dispose: close the socket, no terminal event; bounded by close_timeout."""
        self.begin_close(False)
        self.wait_closed(time.monotonic() + self._context.transport.close_timeout)

    def begin_close(self, complete: bool) -> None:
        """Stop delivering and start closing; ``complete`` emits on_completed.

        A callback in progress on the delivery thread may still settle its message: the
        socket closes when it returns (the delivery thread closes it on reaching the end of
        its queue), or at half the close deadline if it does not.
        """
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
            self._ending = True
        self._context.unregister(self._key)
        self._queue.put(_End(None) if complete else _End(_DISPOSED))
        if threading.current_thread() is self._delivery or not self._delivery.is_alive():
            self._close_socket()

    def _close_socket(self) -> None:
        """Refuse further settles and close the socket gracefully (idempotent)."""
        with self._lock:
            self._state.close()
            conn = self._feed.conn
        if conn is not None:
            conn.close()  # settles already queued still go out, then a close frame

    def wait_closed(self, deadline: float) -> None:
        current = threading.current_thread()
        if self._delivery is not current and self._delivery.ident is not None:
            now = time.monotonic()
            self._delivery.join(max(0.0, (deadline - now) / 2))
        self._close_socket()
        self._feed.wait_ended(deadline)
        if self._delivery is not current and self._delivery.ident is not None:
            # The observer may be stuck in user code: never wait past the deadline for it.
            self._delivery.join(max(0.0, deadline - time.monotonic()))

    def _fail(self, error: Exception) -> None:
        """End with ``error`` (from the feed)."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
        self._context.unregister(self._key)
        self._queue.put(_End(error))

    def _part_ended(self) -> None:
        with self._lock:
            self._parts_left -= 1
            finished = self._parts_left == 0
        if finished:
            self._context.finished(self._key)

    # -- delivery thread ---------------------------------------------------------------------

    def _delivery_loop(self) -> None:
        try:
            self._deliver_until_end()
        except Exception as exc:  # a bug must end the stream, never leave it silent
            log.exception("the delivery thread of %s failed", self.handle)
            self.begin_close(False)
            self._terminate(ProtocolError(f"the delivery thread failed: {exc!r}"))
        finally:
            self._part_ended()

    def _deliver_until_end(self) -> None:
        """Deliver batches until the queue's end.

        The stall check runs while the wait is idle, but only for a stream that holds all its
        credit: one that does not cannot stall before its next batch (only a delivery takes
        credit), so it sleeps until that batch instead of waking each second (a hundred idle
        consumers woke a hundred times a second).
        """
        check = None if self._spec.stall_timeout is None else min(1.0, self._spec.stall_timeout)
        state = self._state
        while True:
            try:
                held = check is not None and state.saturated
                item = self._queue.get(timeout=check if held else None)
            except queue.Empty:
                self._check_stall()
                continue
            if isinstance(item, _End):
                self._close_socket()
                self._terminate(item.error)
                return
            if not self._deliver_batch(*item):
                return

    def _check_stall(self) -> None:
        """Warn once per stall when all credit is held and nothing settled for a while."""
        limit = self._spec.stall_timeout
        assert limit is not None
        now = time.monotonic()
        with self._lock:
            held = self._state.stalled(now, limit)
            idle = now - self._state.last_settled
        if held is not None:
            self._context.report(_stalled(self._spec, held, idle))

    def _deliver_batch(self, settler: Settler, frames: list[MessageFrame]) -> bool:
        """Hand one read's messages to the observer, in order; False when the observer raised.

        One loop for the batch, its callables looked up once: a call and several attribute
        lookups less for each message.
        """
        build, deliver, on_next = self._messages.build, settler.deliver, self._observer.on_next
        returns, unsettled = settler.settles_on_return, settler.unsettled
        for frame in frames:
            if self._ending:
                return True
            message = build(frame, settler)
            if not deliver(message, frame.message_id):
                continue  # its socket is gone: the broker sends it again on the new one
            if message.schema_error is not None and not self._spec.deliver_schema_failures:
                self._context.report(_schema_failed(self._spec, message))
                with contextlib.suppress(AckError):
                    settler.nack(message)
                continue
            try:
                on_next(message)
            except Exception as exc:  # the user's callback: route it to on_error
                log.debug("observer raised %r; ending the subscription", exc)
                self.begin_close(False)
                self._terminate(exc)
                return False
            if returns and message in unsettled:
                settler.returned(message)  # not settled by the observer: a reader's is now
        return True

    def _terminate(self, error: Exception | None) -> None:
        if self._terminated:
            return
        self._terminated = True
        if error is _DISPOSED:
            return
        if isinstance(error, NormalClose):
            error = None
        try:
            if error is None:
                self._observer.on_completed()
            else:
                self._observer.on_error(error)
        except Exception:
            log.exception("an observer's terminal callback raised")


_DISPOSED = NormalClose(Exception("disposed"))


def _schema_failed(spec: ReceiverSpec, message: Message[Any]) -> SchemaError:
    return SchemaError(
        f"message {message.message_id} on {spec.topic} does not match the schema (nacked):"
        f" {message.schema_error}",
        message_id=str(message.message_id),
    )


def _stalled(spec: ReceiverSpec, held: int, idle: float) -> StalledStreamError:
    return StalledStreamError(
        f"the consumer on {spec.topic} holds all {held} messages of its credit"
        f" (max_in_flight) and settled none for {idle:.0f} s: a stage neither acks nor"
        " passes messages on (a filter that drops without acking, a buffer larger than"
        " max_in_flight, a missing acknowledger?)",
        topic=str(spec.topic),
        held=held,
    )


def observe(context: ClientContext, spec: ReceiverSpec) -> Stream[Message[Any]]:
    """A cold Observable: each subscription opens its own consumer or reader socket."""

    def subscribe(
        observer: abc.ObserverBase[Message[Any]], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        from reactivex.disposable import Disposable

        try:
            session = _Session(context, spec, observer)
        except StargateError as exc:
            observer.on_error(exc)
            return Disposable()
        try:
            session.start()
        except BaseException:  # Ctrl-C while its threads start: no caller can dispose it
            session.dispose()
            raise
        return Disposable(session.dispose)

    return Stream(subscribe)
