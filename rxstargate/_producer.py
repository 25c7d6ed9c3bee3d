"""The producer: an Rx Observer that sends each item to a topic and matches broker acks to it.

Threads: the socket is opened on the first send, by the sending thread. Sends from any thread
only queue a frame for the socket's writer. The producer's receive thread
("rxstargate-producer-<topic>") reads acks and, after a dropped connection, reconnects with
backoff and re-sends every pending message with its original context id. ``acks`` observers
run on one thread of their own ("rxstargate-acks-<topic>", started when someone observes),
one call at a time, so they may call ``send()`` without stopping acks from being read.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from marshmallow import Schema
from reactivex import Observable, abc

from rxstargate._ackstream import AckStream
from rxstargate._config import checked_seconds
from rxstargate._context import ClientContext
from rxstargate._frames import decode_producer_ack
from rxstargate._outgoing import encode_outgoing
from rxstargate._reconnect import reconnect
from rxstargate._seam import Transport
from rxstargate.exceptions import (
    ClosedError,
    ConfigurationError,
    ConnectionClosedError,
    ProtocolError,
    SendError,
    StargateConnectionError,
    StargateError,
    StargateTimeoutError,
)
from rxstargate.models import ClientResult, MessageId, OutgoingMessage, ProducerAck, TopicName
from rxstargate.streams import StreamHandle

__all__ = ["AckCallback", "Producer", "send_error_for"]

T = TypeVar("T")
log = logging.getLogger("rxstargate.producer")


#: Called with a message's ack (ok or failed) on the thread that settles it.
AckCallback = Callable[[ProducerAck], None]


class _Pending:
    __slots__ = ("ack", "callback", "correlation", "done", "frame", "future")

    def __init__(
        self,
        frame: bytes,
        waiter: bool,
        correlation: Any = None,
        future: Future[ProducerAck] | None = None,
        callback: AckCallback | None = None,
    ) -> None:
        self.frame = frame
        self.done = threading.Event() if waiter else None
        self.correlation = correlation
        self.future = future
        self.callback = callback
        self.ack: ProducerAck | None = None

    @property
    def seen(self) -> bool:
        """Whether a caller gets this message's ack directly (send, a future, a callback)."""
        return self.done is not None or self.future is not None or self.callback is not None

    def resolve(self, ack: ProducerAck) -> None:
        self.ack = ack
        if self.done is not None:
            self.done.set()
        if self.callback is not None:
            try:
                self.callback(ack)
            except Exception:
                log.exception("an ack callback raised")
        future = self.future
        if future is not None and future.set_running_or_notify_cancel():
            if ack.ok:
                future.set_result(ack)
            else:
                future.set_exception(send_error_for(ack))


def send_error_for(ack: ProducerAck) -> SendError:
    return SendError(
        f"message {ack.context} failed: {ack.result} {ack.error_message or ''}".rstrip(),
        ack.result,
        ack.context,
    )


class Producer(abc.ObserverBase[Any], Generic[T]):
    """Sends messages to one topic; an Rx ``Observer`` of payloads.

    Items may be ``bytes``, ``str`` (sent as UTF-8), :class:`~rxstargate.OutgoingMessage`,
    or, with a schema, objects the schema serialises to JSON. At most ``max_in_flight``
    messages are unacknowledged: ``on_next`` and ``send`` block beyond that, for at most
    ``timeout`` seconds.

    As an Observer it never raises into its upstream: a message that cannot be sent (bad
    payload, too large, no slot in time, producer closed) is a failed item on ``acks`` whose
    ``result`` is a :class:`~rxstargate.ClientResult`. ``on_completed`` waits for every
    pending ack, then closes; ``on_error`` does the same and ends ``acks`` with the error.
    Create producers with ``topic.producer(...)``.

    Example:
        >>> with rs.Client(url) as client:  # doctest: +SKIP
        ...     producer = client.topic("orders").producer()
        ...     producer.send(b"hello").ok
        ...     rx.from_iterable([b"a", b"b"]).subscribe(producer)
        True
    """

    def __init__(
        self,
        context: ClientContext,
        topic: TopicName,
        query: dict[str, str],
        *,
        schema: Schema | None = None,
        max_in_flight: int = 1000,
        timeout: float = 30.0,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.topic = topic
        self.max_in_flight = max_in_flight
        self._context = context
        self._url = context.url("producer", topic, None, query)
        self._schema = schema
        self._timeout = timeout
        self._max_frame = context.transport.max_send_bytes
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._open_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._pending: dict[str, _Pending] = {}
        self._settling = 0  # acks taken from _pending and not yet handed to `acks`
        self._contexts = itertools.count(1)
        self._conn: Transport | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._closed = False
        self._completed = False
        self._failure: StargateError | None = None
        self._slot_waiters: collections.deque[_SlotWaiter] = collections.deque()  # asend()s
        self._waiters_lock = threading.Lock()
        self._open_attempts = 0
        self._open_failure: StargateError | None = None
        self._acks = AckStream(topic.topic, self._free_slot)
        handle = StreamHandle("producer", topic, None, self._begin_close, self._wait_closed)
        self._key = context.register(handle)

    @property
    def acks(self) -> Observable[ProducerAck]:
        """Every message's :class:`~rxstargate.ProducerAck`, in the order they were settled.

        A failed message is an item (``ack.ok`` is False). The stream completes when the
        producer closes and errors when it fails; it is hot: subscribe before sending.
        Observers run on the producer's acks thread, one call at a time; they may call
        ``send()`` (which waits on the receive thread, not on them), but a send that would
        have to wait for a free slot fails at once with ``ClientResult.WOULD_DEADLOCK``
        instead of waiting for itself. An observer that raises gets ``on_error`` with its
        exception and is detached.

        Marble::

            on_next:  --a----b----c--|
            acks:     ----A----B----C|
        """
        return self._acks.observable()

    # -- Observer -------------------------------------------------------------------------

    def on_next(self, value: Any) -> None:
        """Send ``value`` without waiting for its ack (blocks only at ``max_in_flight``).

        Never raises: what cannot be sent becomes a failed item on ``acks``.
        """
        correlation = value.correlation if isinstance(value, OutgoingMessage) else None
        if self._completed:
            reason = "on_next after on_completed"
            self._emit(self._failed("", ClientResult.CLOSED, reason, correlation))
            return
        try:
            self._submit(value, waiter=False)
        except StargateError as exc:
            self._emit(self._failed("", _result_for(exc), str(exc), correlation))

    def on_error(self, error: Exception) -> None:
        """The upstream failed: flush what is pending, close, and end ``acks`` with ``error``."""
        self._finish(error)

    def on_completed(self) -> None:
        """The upstream ended: flush what is pending and close (``acks`` completes)."""
        self._finish(None)

    # -- Request/response ----------------------------------------------------------------

    def send(
        self,
        payload: Any,
        *,
        key: str | None = None,
        properties: Mapping[str, str] | None = None,
        event_time: datetime | None = None,
        timeout: float | timedelta | None = None,
    ) -> ProducerAck:
        """Send one message and wait for the broker's ack.

        Args:
            payload: bytes, str, an OutgoingMessage, or an object for the schema.
            key: the partition key.
            properties: message properties.
            event_time: an aware datetime.
            timeout: seconds (or a timedelta) to wait; the producer's timeout when None.

        Returns:
            The ack, with the stored message's id.

        Raises:
            SendError: when the broker refused or failed the message, or it could not be
                sent (``result`` says which).
            StargateTimeoutError: when no ack came in time (the message stays pending).
            StargateConnectionError: when the connection cannot be opened.
            ClosedError: after the producer was closed.

        Example:
            >>> producer.send(b"hi", key="k", properties={"a": "1"}).ok  # doctest: +SKIP
            True
        """
        payload = _outgoing(payload, key, properties, event_time, None)
        wait = self._timeout if timeout is None else checked_seconds(timeout, "timeout")
        context, entry = self._submit(payload, waiter=True, wait=wait)
        assert entry.done is not None
        if not entry.done.wait(wait):
            raise StargateTimeoutError(f"no ack for message {context} within {wait:.1f} s")
        ack = entry.ack
        assert ack is not None
        if not ack.ok:
            raise send_error_for(ack)
        return ack

    def send_async(
        self,
        payload: Any,
        *,
        key: str | None = None,
        properties: Mapping[str, str] | None = None,
        event_time: datetime | None = None,
        correlation: Any = None,
    ) -> Future[ProducerAck]:
        """Send one message; the returned future completes with its ack.

        Blocks only while ``max_in_flight`` messages are unacknowledged (at most the
        producer's timeout). Never raises: every failure completes the future with an
        exception (``SendError`` whose ``result`` says why, ``StargateTimeoutError``, or
        ``ClosedError``). The ack also appears on ``acks``.

        Example:
            >>> futures = [producer.send_async(b"x", correlation=i) for i in range(3)]  # doctest: +SKIP
            >>> [f.result(10).correlation for f in futures]  # doctest: +SKIP
            [0, 1, 2]
        """  # noqa: E501
        future: Future[ProducerAck] = Future()
        try:
            message = _outgoing(payload, key, properties, event_time, correlation)
            self._submit(message, waiter=False, future=future)
        except StargateError as exc:
            if future.set_running_or_notify_cancel():
                future.set_exception(exc)
        return future

    def send_then(self, message: Any, callback: AckCallback) -> None:
        """Send ``message`` and call ``callback`` with its ack, ok or failed (for operators).

        Blocks like ``on_next`` while ``max_in_flight`` are pending; never raises: a message
        that cannot be sent reaches ``callback`` as a failed ack. The callback runs on the
        thread that settles the message (usually the producer's receive thread): keep it short.
        """
        correlation = message.correlation if isinstance(message, OutgoingMessage) else None
        try:
            self._submit(message, waiter=False, callback=callback)
        except StargateError as exc:
            callback(self._failed("", _result_for(exc), str(exc), correlation))

    async def asend(
        self,
        payload: Any,
        *,
        key: str | None = None,
        properties: Mapping[str, str] | None = None,
        event_time: datetime | None = None,
        correlation: Any = None,
    ) -> ProducerAck:
        """Send one message from a coroutine and await its ack; never blocks the event loop.

        The socket is opened on a worker thread; a send that finds every slot taken waits on
        the loop until a freed slot wakes it (first come, first woken), so cancelling it while
        it waits (a ``wait_for`` timeout) means the message is never sent. Once sent,
        cancelling only stops waiting for the ack.

        Raises:
            SendError: when the broker refused or failed the message, or it could not be sent.
            StargateTimeoutError: when no slot freed up within the producer's timeout.
            StargateConnectionError: when the socket cannot be opened.
            ClosedError: after the producer was closed.

        Example:
            >>> ack = await producer.asend(b"hello", key="k")  # doctest: +SKIP
        """
        message = _outgoing(payload, key, properties, event_time, correlation)
        if self._thread is None and not self._closed:
            await asyncio.to_thread(self._ensure_open)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        future: Future[ProducerAck] = Future()
        while not self._slots.acquire(blocking=False):
            if self._closed:
                raise self._failure or ClosedError("the producer is closed")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise StargateTimeoutError(
                    f"{self.max_in_flight} messages unacknowledged for {self._timeout:.1f} s"
                )
            await self._slot_freed(loop, remaining)
        self._submit(message, waiter=False, future=future, have_slot=True)
        return await asyncio.wrap_future(future)

    async def _slot_freed(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """Wait on ``loop`` until a send slot is freed (or ``timeout``); FIFO among asend()s."""
        waiter: asyncio.Future[None] = loop.create_future()
        entry = (loop, waiter)
        with self._waiters_lock:
            self._slot_waiters.append(entry)
        try:
            if self._slots.acquire(blocking=False):  # freed before this waiter was listed
                self._slots.release()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout)
        finally:
            with self._waiters_lock:
                try:
                    self._slot_waiters.remove(entry)
                    woken = False
                except ValueError:
                    woken = True
            if woken and not (waiter.done() and not waiter.cancelled()):
                self._wake_next()  # chosen, then cancelled or timed out: pass the wake on

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every sent message has its ack.

        Raises:
            StargateTimeoutError: when acks are still missing after ``timeout`` seconds.
            StargateError: the producer's failure, once it failed (it gave up reconnecting,
                for example): what was pending then was reported failed.

        Example:
            >>> for payload in (b"a", b"b"):  # doctest: +SKIP
            ...     producer.on_next(payload)
            >>> producer.flush(timeout=10)  # doctest: +SKIP
        """
        wait = self._timeout if timeout is None else checked_seconds(timeout, "timeout")
        if self._failure is not None:
            raise self._failure
        with self._idle:
            if not self._idle.wait_for(lambda: not self._pending and not self._settling, wait):
                raise StargateTimeoutError(
                    f"{len(self._pending)} message(s) still unacknowledged after {wait:.1f} s"
                )

    def close(self) -> None:
        """Close the socket now; messages still pending are reported failed on ``acks``.

        Returns within the client's ``close_timeout``. Use ``on_completed()`` (or
        ``with producer:``) to wait for pending acks first.
        """
        self._begin_close(True)
        self._wait_closed(time.monotonic() + self._context.transport.close_timeout)

    def __enter__(self) -> Producer[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._finish(None)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._conn else "new"
        return f"Producer(topic={self.topic!r}, {state}, pending={len(self._pending)})"

    # -- Sending --------------------------------------------------------------------------

    def _submit(
        self,
        value: Any,
        *,
        waiter: bool,
        wait: float | None = None,
        future: Future[ProducerAck] | None = None,
        callback: AckCallback | None = None,
        have_slot: bool = False,
    ) -> tuple[str, _Pending]:
        """Queue ``value``; with ``have_slot`` the caller took its send slot already."""
        try:
            return self._submit_frame(value, waiter, wait, future, callback, have_slot)
        except BaseException:
            if have_slot:
                self._free_slot()
            raise

    def _submit_frame(
        self,
        value: Any,
        waiter: bool,
        wait: float | None,
        future: Future[ProducerAck] | None,
        callback: AckCallback | None,
        have_slot: bool,
    ) -> tuple[str, _Pending]:
        if self._closed:
            raise self._failure or ClosedError("the producer is closed")
        correlation = value.correlation if isinstance(value, OutgoingMessage) else None
        context = str(next(self._contexts))
        try:
            frame = encode_outgoing(value, context, self._schema).encode("utf-8")
        except Exception as exc:  # what a schema's dump raises is the user's: a failed message
            ack = self._failed(context, ClientResult.INVALID_PAYLOAD, str(exc), correlation)
            if have_slot:
                self._free_slot()
            return context, self._refuse(ack, waiter, future, callback)
        if len(frame) > self._max_frame:
            reason = (
                f"the message frame is {len(frame)} bytes, over the server's limit of"
                f" {self._max_frame} bytes (payloads travel as base64 inside JSON)"
            )
            ack = self._failed(context, ClientResult.PAYLOAD_TOO_LARGE, reason, correlation)
            if have_slot:
                self._free_slot()
            return context, self._refuse(ack, waiter, future, callback)
        self._ensure_open()
        if not have_slot:
            self._take_slot(self._timeout if wait is None else wait)
        entry = _Pending(frame, waiter, correlation, future, callback)
        with self._lock:
            if self._closed:
                if not have_slot:  # the caller frees a slot it brought
                    self._free_slot()
                raise self._failure or ClosedError("the producer is closed")
            self._pending[context] = entry
            conn = self._conn
            if conn is not None:
                # On a dead connection the receive thread reconnects and re-sends what is pending.
                with contextlib.suppress(StargateConnectionError):
                    conn.send(frame)
        return context, entry

    def _take_slot(self, wait: float) -> None:
        if self._acks.on_own_thread():
            if not self._slots.acquire(blocking=False):
                raise _WouldDeadlock(
                    f"all {self.max_in_flight} send slots are taken and this send comes from"
                    " the producer's own acks callback, whose return frees them: send from"
                    " another thread, or raise max_in_flight"
                )
            return
        if not self._slots.acquire(timeout=wait):
            raise StargateTimeoutError(
                f"{self.max_in_flight} messages unacknowledged for {wait:.1f} s"
            )

    def _refuse(
        self,
        ack: ProducerAck,
        waiter: bool,
        future: Future[ProducerAck] | None,
        callback: AckCallback | None = None,
    ) -> _Pending:
        entry = _Pending(b"", waiter, ack.correlation, future, callback)
        self._emit(ack, seen=entry.seen)
        entry.resolve(ack)
        return entry

    @staticmethod
    def _failed(
        context: str, result: ClientResult, reason: str, correlation: Any = None
    ) -> ProducerAck:
        return ProducerAck(context, None, result.value, reason, correlation)

    def _ensure_open(self) -> None:
        if self._thread is not None:
            return
        attempt = self._open_attempts
        with self._open_lock:
            if self._thread is not None:
                return
            if self._open_attempts != attempt and self._open_failure is not None:
                raise self._open_failure  # failed while this caller waited: do not try again
            self._open_attempts += 1
            try:
                conn = self._context.open(self._url, self.topic.topic)
            except StargateError as exc:
                self._open_failure = exc
                raise
            self._open_failure = None
            with self._lock:
                if self._closed:  # closed while connecting
                    conn.release()
                    raise self._failure or ClosedError("the producer is closed")
                self._conn = conn
            self._thread = threading.Thread(
                target=self._receive,
                args=(conn,),
                name=f"rxstargate-producer-{self.topic.topic}",
                daemon=True,
            )
            self._thread.start()

    # -- Receiving ------------------------------------------------------------------------

    def _receive(self, conn: Transport) -> None:
        try:
            self._receive_acks(conn)
        except Exception as exc:  # a bug must end the producer, never leave it silent
            log.exception("the receive thread of the producer on %s failed", self.topic)
            with self._lock:
                current = self._conn
            if current is not None:
                current.release()
            self._shutdown(ProtocolError(f"the receive thread failed: {exc!r}"))

    def _receive_acks(self, conn: Transport) -> None:
        while True:
            try:
                texts = conn.recv_batch()
            except ConnectionClosedError as exc:
                conn.release()
                if self._stopped.is_set():
                    return
                log.warning("producer on %s lost its connection: %s", self.topic, exc)
                if not exc.retriable:
                    self._shutdown(exc)
                    return
                try:
                    new = reconnect(
                        lambda: self._context.open(self._url, self.topic.topic),
                        self._context.backoff,
                        self._stopped,
                        f"producer on {self.topic}",
                    )
                except StargateError as error:
                    self._shutdown(error)
                    return
                if new is None:
                    return
                conn = self._resume(new)
                continue
            if texts is None:
                conn.release()
                return
            for text in texts:
                try:
                    frame = decode_producer_ack(text)
                except ProtocolError as exc:
                    self._context.report(exc)
                    continue
                self._resolve(frame.context, frame.result, frame.message_id, frame.error_msg)

    def _resume(self, conn: Transport) -> Transport:
        with self._lock:
            if self._closed:
                conn.abort()  # closed while reconnecting: recv() now returns None
                return conn
            self._conn = conn
            pending = list(self._pending.values())
            log.info("producer on %s reconnected; re-sending %d", self.topic, len(pending))
            try:
                for entry in pending:
                    conn.send(entry.frame)
            except StargateConnectionError:
                pass  # dropped again: the next reconnect re-sends
        return conn

    def _resolve(
        self, context: str | None, result: str, message_id: str | None, error: str | None
    ) -> None:
        with self._lock:
            entry = self._pending.pop(context, None) if context is not None else None
            if entry is not None:
                self._settling += 1  # flush() waits until its ack is on `acks` too
        if entry is None:
            if context is None or result != "ok":
                self._context.report(
                    ProtocolError(f"producer ack for no pending message: {context} {result}")
                )
            return  # a duplicate ack after a re-send
        ack = ProducerAck(
            context or "",
            MessageId(message_id) if message_id else None,
            result,
            error,
            entry.correlation,
        )
        # queued before send() returns, so acks keep send order
        self._emit(ack, slot=True, seen=entry.seen)
        entry.resolve(ack)
        with self._lock:
            self._settling -= 1
            if not self._pending and not self._settling:
                self._idle.notify_all()

    def _free_slot(self) -> None:
        """Free one send slot and wake the asend() waiting longest for one."""
        self._slots.release()
        self._wake_next()

    def _wake_next(self) -> None:
        if not self._slot_waiters:  # the common case, on every ack: no asend() waits
            return
        with self._waiters_lock:
            while self._slot_waiters:
                loop, waiter = self._slot_waiters.popleft()
                if not waiter.done():
                    break
            else:
                return
        with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits there
            loop.call_soon_threadsafe(_wake, waiter)

    def _wake_all(self) -> None:
        with self._waiters_lock:
            waiters = list(self._slot_waiters)
            self._slot_waiters.clear()
        for loop, waiter in waiters:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake, waiter)

    def _emit(self, ack: ProducerAck, slot: bool = False, seen: bool = False) -> None:
        """Hand ``ack`` to ``acks``; ``seen``: its caller gets it directly as well."""
        if not ack.ok and not seen and not self._acks.delivers:
            # Nobody will see this failure on `acks` (unobserved, or ended): never drop it
            # silently.
            self._context.report(
                SendError(
                    f"a message for {self.topic} was not stored, and no acks observer saw it:"
                    f" {ack.result} {ack.error_message or ''}".rstrip(),
                    ack.result,
                    ack.context,
                )
            )
        self._acks.emit(ack, slot)

    # -- Ending ---------------------------------------------------------------------------

    def _finish(self, error: Exception | None) -> None:
        self._completed = True
        if self._closed:
            return
        try:
            self.flush()
        except StargateTimeoutError as exc:
            log.warning("producer on %s closing with acks missing: %s", self.topic, exc)
            error = error or exc
        self._shutdown(error)

    def _shutdown(self, error: Exception | None) -> None:
        self._begin_close(True, error)
        self._wait_closed(time.monotonic() + self._context.transport.close_timeout)

    def _begin_close(self, complete: bool, error: Exception | None = None) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if isinstance(error, StargateError):
                self._failure = error
            conn = self._conn
            leftover = list(self._pending.items())
            self._pending.clear()
            self._idle.notify_all()
        self._stopped.set()
        if conn is not None:
            conn.close()
        if error is None:
            reason = "the producer was closed before the broker answered"
        else:
            reason = f"the producer failed before the broker answered: {error}"
        for context, entry in leftover:
            ack = self._failed(context, ClientResult.CLOSED, reason, entry.correlation)
            self._emit(ack, slot=True, seen=entry.seen)
            entry.resolve(ack)
        self._acks.end(error)
        self._wake_all()  # waiting asend()s find the producer closed

    def _wait_closed(self, deadline: float) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                with self._lock:
                    conn = self._conn
                if conn is not None:
                    conn.abort()
                thread.join(1.0)
        self._acks.wait_ended(deadline)
        self._context.finished(self._key)  # listed until its acks ended


_SlotWaiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _WouldDeadlock(StargateError):
    """A send from the producer's acks thread found no free slot."""


def _outgoing(
    payload: Any,
    key: str | None,
    properties: Mapping[str, str] | None,
    event_time: datetime | None,
    correlation: Any,
) -> Any:
    if key is None and properties is None and event_time is None and correlation is None:
        return payload
    if isinstance(payload, OutgoingMessage):
        raise ConfigurationError("pass key, properties and the like inside the OutgoingMessage")
    return OutgoingMessage(
        payload, key=key, properties=properties, event_time=event_time, correlation=correlation
    )


def _result_for(error: StargateError) -> ClientResult:
    if isinstance(error, _WouldDeadlock):
        return ClientResult.WOULD_DEADLOCK
    if isinstance(error, StargateTimeoutError):
        return ClientResult.TIMEOUT
    if isinstance(error, ClosedError):
        return ClientResult.CLOSED
    return ClientResult.CONNECTION_FAILED
