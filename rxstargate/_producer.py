"""The producer: an Rx Observer that sends each item to a topic and matches broker acks to it.

This module is the public API and what each call does with a message that cannot be sent.
Behind it, the producing core (``_produce_state``) owns context ids, pending messages, slots,
resends and each message's fate, with no I/O; ``_producer_driver`` runs the core under a lock
with the socket (``_producer_link``) and the deliveries (``_ackstream``).

Threads: the socket is opened on the first send, by the sending thread. Sends from any thread
only queue a frame for the socket. The client's I/O thread reads acks (a receive thread,
"rxstargate-producer-<topic>", on a transport that does not read by itself) and, after a
dropped connection, a thread of the producer's (the same name, only meanwhile, see
``_producer_link``) reconnects with backoff and re-sends every pending message with its
original context id; of your callbacks they run only ``client.errors`` observers. ``acks``
observers, the futures of ``send_async``/``asend`` and ``send_then`` callbacks run on one thread
of their own ("rxstargate-acks-<topic>", ``_ackstream``), one call at a time, so they may call
``send()`` without stopping acks from being read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from marshmallow import Schema
from reactivex import Observable, abc

from rxstargate._ackstream import AckCallback, AckWaiter, Relay, send_error_for
from rxstargate._config import checked_seconds
from rxstargate._context import ClientContext
from rxstargate._flow import DEFAULT_MAX_IN_FLIGHT
from rxstargate._producer_driver import ProducerDriver
from rxstargate.exceptions import (
    ClosedError,
    ConfigurationError,
    StargateError,
    StargateTimeoutError,
)
from rxstargate.models import OutgoingMessage, ProducerAck, TopicName

__all__ = ["AckCallback", "Producer", "Relay", "RelayedSends", "send_error_for"]

T = TypeVar("T")
log = logging.getLogger("rxstargate.producer")


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
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        timeout: float = 30.0,
    ) -> None:
        self.topic = topic
        self.max_in_flight = max_in_flight
        self._timeout = timeout
        self._driver = ProducerDriver(context, topic, query, schema, max_in_flight)
        self._completed = False

    @property
    def acks(self) -> Observable[ProducerAck]:
        """Every message's :class:`~rxstargate.ProducerAck`, in the order they were settled.

        A failed message is an item (``ack.ok`` is False). The stream completes when the
        producer closes and errors when it fails; it is hot: subscribe before sending.
        Observers run on the producer's acks thread, one call at a time; they may call
        ``send()`` (which waits on the receive thread, not on them), but a send that would
        have to wait for a free slot fails at once with ``ClientResult.WOULD_DEADLOCK``
        instead of waiting for itself. An observer that raises gets ``on_error`` with its
        exception and is detached. ``flush()`` and ``close()`` return once every ack was
        handed to the observers.

        Marble::

            on_next:  --a----b----c--|
            acks:     ----A----B----C|
        """
        return self._driver.acks.observable()

    # -- Observer -------------------------------------------------------------------------

    def on_next(self, value: Any) -> None:
        """Send ``value`` without waiting for its ack (blocks only at ``max_in_flight``).

        Never raises: what cannot be sent becomes a failed item on ``acks``.
        """
        driver = self._driver
        submission = driver.state.submission(value, None)
        if self._completed:
            driver.refuse(submission, ClosedError("on_next after on_completed"))
            return
        try:
            driver.submit(submission, self._timeout)
        except StargateError as exc:
            driver.refuse(submission, exc)

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
        message = _outgoing(payload, key, properties, event_time, None)
        wait = self._timeout if timeout is None else checked_seconds(timeout, "timeout")
        done = AckWaiter()
        submission = self._driver.state.submission(message, done)
        self._driver.submit(submission, wait)
        if not done.wait(wait):
            raise StargateTimeoutError(
                f"no ack for message {submission.context} within {wait:.1f} s"
            )
        ack = submission.ack
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
        ``ClosedError``). The ack also appears on ``acks``. The future completes on the
        producer's acks thread, never on its receive thread, so a done-callback may send.

        Example:
            >>> futures = [producer.send_async(b"x", correlation=i) for i in range(3)]  # doctest: +SKIP
            >>> [f.result(10).correlation for f in futures]  # doctest: +SKIP
            [0, 1, 2]
        """  # noqa: E501
        future: Future[ProducerAck] = Future()
        try:
            message = _outgoing(payload, key, properties, event_time, correlation)
            self._driver.submit(self._driver.awaited_submission(message, future), self._timeout)
        except StargateError as exc:
            if future.set_running_or_notify_cancel():
                future.set_exception(exc)
        return future

    def send_then(self, message: Any, callback: AckCallback) -> None:
        """Send ``message`` and call ``callback`` with its ack, ok or failed (for operators).

        Blocks like ``on_next`` while ``max_in_flight`` are pending; never raises: a message
        that cannot be sent reaches ``callback`` as a failed ack. The callback runs on the
        producer's acks thread, one at a time with ``acks`` observers: keep it short.
        """
        self._send_handled(message, callback)

    def _send_handled(self, message: Any, handle: AckCallback) -> None:
        submission = self._driver.awaited_submission(message, handle)
        try:
            self._driver.submit(submission, self._timeout)
        except StargateError as exc:
            self._driver.refuse(submission, exc)

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
        driver = self._driver
        if not driver.link.started and not driver.state.closed:
            await asyncio.to_thread(driver.link.ensure_open)
        future: Future[ProducerAck] = Future()
        submission = driver.awaited_submission(message, future)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while not driver.submit(submission, None):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise StargateTimeoutError(
                    f"{self.max_in_flight} messages unacknowledged for {self._timeout:.1f} s"
                )
            await driver.slot_freed(loop, remaining)
        return await asyncio.wrap_future(future)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every sent message has its ack, and every ack reached ``acks`` observers.

        From an ``acks`` observer (or a future's done-callback) it waits for the acks only:
        their delivery comes after the callback returns.

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
        if self._driver.state.failure is None:
            self._driver.wait_idle(wait)
        if self._driver.state.failure is not None:
            raise self._driver.closed_error()

    def close(self) -> None:
        """Close the socket now; messages still pending are reported failed on ``acks``.

        Returns within the client's ``close_timeout``, once ``acks`` observers have seen every
        ack. Use ``on_completed()`` (or ``with producer:``) to wait for pending acks first.
        """
        self._driver.shutdown(None)

    def __enter__(self) -> Producer[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._finish(None)

    def __repr__(self) -> str:
        return f"Producer(topic={self.topic!r}, {self._driver!r})"

    def _finish(self, error: Exception | None) -> None:
        self._completed = True
        if self._driver.state.closed:
            return
        try:
            self.flush()
        except StargateTimeoutError as exc:
            log.warning("producer on %s closing with acks missing: %s", self.topic, exc)
            error = error or exc
        except StargateError:
            return  # it failed meanwhile, and closed with its failure
        self._driver.shutdown(error)


class RelayedSends:
    """How an operator sends messages whose acks go to a Relay (``publish``), bound once.

    As :meth:`Producer.send_then`, but a message's ack goes to its relay's ``relayed`` on the
    thread that settles it, not on the acks thread (see ``_ackstream.Relay``). The operator
    sends each message itself with these (one call and four lookups fewer a message than a
    function that takes the producer)::

        submission = sends.submission(message, None)
        submission.relay, submission.item = relay, item
        try:
            sends.submit(submission, sends.timeout)
        except StargateError as exc:
            sends.refuse(submission, exc)
    """

    __slots__ = ("refuse", "submission", "submit", "timeout")

    def __init__(self, producer: Producer[Any]) -> None:
        driver = producer._driver
        self.submission = driver.state.submission
        self.submit = driver.submit
        self.refuse = driver.refuse
        self.timeout = producer._timeout


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
