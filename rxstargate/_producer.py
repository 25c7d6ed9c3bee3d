"""The producer: an Rx Observer that sends each item to a topic and matches broker acks to it.

Threads: the socket is opened on the first send, by the sending thread. One receive thread
per producer ("rxstargate-producer-<topic>") reads acks, emits them on ``acks`` (so ``acks``
observers run on that thread) and, after a dropped connection, reconnects with backoff and
re-sends every pending message with its original context id. Sends are thread-safe.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from marshmallow import Schema
from reactivex import Observable, abc

from rxstargate._context import ClientContext
from rxstargate._fanout import Fanout
from rxstargate._frames import decode_producer_ack
from rxstargate._outgoing import encode_outgoing, seconds
from rxstargate._reconnect import reconnect
from rxstargate._transport import Connection
from rxstargate.exceptions import (
    ClosedError,
    ConnectionClosedError,
    ProtocolError,
    SendError,
    StargateError,
    StargateTimeoutError,
)
from rxstargate.models import MessageId, OutgoingMessage, ProducerAck, TopicName

__all__ = ["Producer"]

T = TypeVar("T")
log = logging.getLogger("rxstargate.producer")

_PAYLOAD_ERROR = "send-error:7"
_LOST = "send-error:8"


class _Pending:
    __slots__ = ("ack", "done", "frame")

    def __init__(self, frame: str, waiter: bool) -> None:
        self.frame = frame
        self.done = threading.Event() if waiter else None
        self.ack: ProducerAck | None = None


class Producer(abc.ObserverBase[Any], Generic[T]):
    """Sends messages to one topic; an Rx ``Observer`` of payloads.

    Items may be ``bytes``, ``str`` (sent as UTF-8), :class:`~rxstargate.OutgoingMessage`,
    or, with a schema, objects the schema serialises to JSON. At most ``max_in_flight``
    messages are unacknowledged: ``on_next`` and ``send`` block beyond that, for at most
    ``timeout`` seconds (then :class:`~rxstargate.StargateTimeoutError`).

    ``on_completed`` waits for every pending ack, then closes. ``on_error`` does the same and
    ends ``acks`` with the error. Create producers with ``topic.producer(...)``.

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
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._open_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._pending: dict[str, _Pending] = {}
        self._contexts = itertools.count(1)
        self._conn: Connection | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._closed = False
        self._failure: StargateError | None = None
        self._acks: Fanout[ProducerAck] = Fanout()
        self._handle = context.register(self.close)

    @property
    def acks(self) -> Observable[ProducerAck]:
        """Every message's :class:`~rxstargate.ProducerAck`, in the order the broker acked them.

        A failed message is an item (``ack.ok`` is False). The stream completes when the
        producer closes and errors when it fails; it is hot: subscribe before sending.
        Observers run on the producer's receive thread (a payload refused before sending, such
        as one that fails the schema, is reported on the sending thread). An observer that
        raises gets ``on_error`` with its exception and is detached.

        Marble::

            on_next:  --a----b----c--|
            acks:     ----A----B----C|
        """
        return self._acks.observable()

    # -- Observer -------------------------------------------------------------------------

    def on_next(self, value: Any) -> None:
        """Send ``value`` without waiting for its ack (blocks only at ``max_in_flight``).

        Raises:
            StargateTimeoutError: when no slot freed up within the timeout.
            StargateConnectionError: when the first connection cannot be opened.
            ClosedError: after the producer was closed.
        """
        self._submit(value, waiter=False)

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
            SendError: when the broker refused or failed the message.
            StargateTimeoutError: when no ack came in time (the message stays pending).
            StargateConnectionError: when the connection cannot be opened.

        Example:
            >>> producer.send(b"hi", key="k", properties={"a": "1"}).ok  # doctest: +SKIP
            True
        """
        if key is not None or properties is not None or event_time is not None:
            payload = OutgoingMessage(
                payload, key=key, properties=properties, event_time=event_time
            )
        wait = self._timeout if timeout is None else seconds(timeout)
        context, entry = self._submit(payload, waiter=True, wait=wait)
        assert entry.done is not None
        if not entry.done.wait(wait):
            raise StargateTimeoutError(f"no ack for message {context} within {wait:.1f} s")
        ack = entry.ack
        assert ack is not None
        if not ack.ok:
            raise SendError(
                f"message {context} failed: {ack.result} {ack.error_message or ''}".rstrip(),
                ack.result,
                context,
            )
        return ack

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every sent message has its ack.

        Raises:
            StargateTimeoutError: when acks are still missing after ``timeout`` seconds.

        Example:
            >>> for payload in (b"a", b"b"):  # doctest: +SKIP
            ...     producer.on_next(payload)
            >>> producer.flush(timeout=10)  # doctest: +SKIP
        """
        wait = self._timeout if timeout is None else timeout
        with self._idle:
            if not self._idle.wait_for(lambda: not self._pending, wait):
                raise StargateTimeoutError(
                    f"{len(self._pending)} message(s) still unacknowledged after {wait:.1f} s"
                )

    def close(self) -> None:
        """Close the socket now; messages still pending are reported failed on ``acks``.

        Use ``on_completed()`` (or ``with producer:``) to wait for pending acks first.
        """
        self._shutdown(None)

    def __enter__(self) -> Producer[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._finish(None)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._conn else "new"
        return f"Producer(topic={self.topic!r}, {state}, pending={len(self._pending)})"

    # -- Machinery ------------------------------------------------------------------------

    def _submit(
        self, value: Any, *, waiter: bool, wait: float | None = None
    ) -> tuple[str, _Pending]:
        if self._closed:
            raise self._failure or ClosedError("the producer is closed")
        self._ensure_open()
        context = str(next(self._contexts))
        try:
            frame = encode_outgoing(value, context, self._schema)
        except (ValueError, TypeError) as exc:
            ack = ProducerAck(context, None, _PAYLOAD_ERROR, str(exc))
            entry = _Pending("", waiter)
            entry.ack = ack
            if entry.done is not None:
                entry.done.set()
            self._acks.on_next(ack)
            return context, entry
        if not self._slots.acquire(timeout=self._timeout if wait is None else wait):
            raise StargateTimeoutError(
                f"{self.max_in_flight} messages unacknowledged for {self._timeout:.1f} s"
            )
        entry = _Pending(frame, waiter)
        with self._lock:
            if self._closed:
                self._slots.release()
                raise self._failure or ClosedError("the producer is closed")
            self._pending[context] = entry
            conn = self._conn
            if conn is not None:
                try:
                    conn.send(frame)
                except StargateError as exc:
                    conn.drop(str(exc))  # the receive thread reconnects and re-sends
        return context, entry

    def _ensure_open(self) -> None:
        if self._thread is not None:
            return
        with self._open_lock:
            if self._thread is not None:
                return
            conn = self._context.open(self._url)
            with self._lock:
                if self._closed:  # closed while connecting
                    conn.abort()
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

    def _receive(self, conn: Connection) -> None:
        while True:
            try:
                text = conn.recv()
            except ConnectionClosedError as exc:
                conn.release()
                if self._stopped.is_set():
                    return
                log.warning("producer on %s lost its connection: %s", self.topic, exc)
                if not exc.retriable:
                    self._fail(exc)
                    return
                try:
                    new = reconnect(
                        lambda: self._context.open(self._url),
                        self._context.backoff,
                        self._stopped,
                        f"producer on {self.topic}",
                    )
                except StargateError as error:
                    self._fail(error)
                    return
                if new is None:
                    return
                conn = self._resume(new)
                continue
            if text is None:
                conn.release()
                return
            try:
                frame = decode_producer_ack(text)
            except ProtocolError as exc:
                self._context.report(exc)
                continue
            self._resolve(frame.context, frame.result, frame.message_id, frame.error_msg)

    def _resume(self, conn: Connection) -> Connection:
        with self._lock:
            if self._closed:
                conn.abort()  # closed while reconnecting: recv() now returns None
                return conn
            self._conn = conn
            pending = list(self._pending.values())
            log.info("producer on %s reconnected; re-sending %d", self.topic, len(pending))
            for entry in pending:
                try:
                    conn.send(entry.frame)
                except StargateError as exc:
                    conn.drop(str(exc))
                    break
        return conn

    def _resolve(
        self, context: str | None, result: str, message_id: str | None, error: str | None
    ) -> None:
        with self._lock:
            entry = self._pending.pop(context, None) if context is not None else None
            if entry is not None and not self._pending:
                self._idle.notify_all()
        if entry is None:
            if context is None or result != "ok":
                self._context.report(
                    ProtocolError(f"producer ack for no pending message: {context} {result}")
                )
            return  # a duplicate ack after a re-send
        ack = ProducerAck(
            context or "", MessageId(message_id) if message_id else None, result, error
        )
        entry.ack = ack
        if entry.done is not None:
            entry.done.set()
        self._slots.release()
        self._acks.on_next(ack)

    def _fail(self, error: StargateError) -> None:
        self._shutdown(error)

    def _finish(self, error: Exception | None) -> None:
        if self._closed:
            return
        try:
            self.flush()
        except StargateTimeoutError as exc:
            log.warning("producer on %s closing with acks missing: %s", self.topic, exc)
            error = error or exc
        self._shutdown(error)

    def _shutdown(self, error: Exception | None) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if isinstance(error, StargateError):
                self._failure = error
            conn = self._conn
        self._stopped.set()
        self._context.unregister(self._handle)
        if conn is not None:
            conn.abort()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        with self._lock:
            leftover = list(self._pending.items())
            self._pending.clear()
            self._idle.notify_all()
        reason = f"producer closed: {error}" if error else "producer closed before the ack came"
        for context, entry in leftover:
            ack = ProducerAck(context, None, _LOST, reason)
            entry.ack = ack
            self._slots.release()
            if entry.done is not None:
                entry.done.set()
            self._acks.on_next(ack)
        self._acks.end(error)
