"""Readers and consumers as cold Observables of Messages, with credit-based backpressure.

Each subscription has two threads of its own (and its socket's writer):

- the receive thread ("rxstargate-consumer-<topic>" / "rxstargate-reader-<topic>") connects,
  reads and decodes frames and reconnects after a drop; it never runs user code, so pongs and
  closes are read on time however slow the pipeline is;
- the delivery thread ("rxstargate-delivery-<topic>") turns frames into Messages and calls the
  observer, one call at a time, terminal events included. A callback that raises ends the
  subscription with ``on_error`` (that exception), never up into rxstargate.

The queue between them holds at most what the server may send: consumers use Pulsar's pull
mode, so the server sends only what was permitted, and settling a message (ack or nack) earns
its permit back (see ``_flow``). A reader's window is ``receiverQueueSize``; its credit comes
back when the observer's ``on_next`` returns, or on ``ack()``/``nack()`` if that comes first.

Disposing the subscription closes its socket (no terminal event); closing the client
completes it. Either way the callback in progress may still settle its message: the socket
closes once it returns (or at half the close deadline). Messages of a dropped socket that were
not delivered yet are skipped (the broker redelivers them on the new socket); acks for them
raise :class:`~rxstargate.AckError`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from marshmallow import Schema, ValidationError
from reactivex import abc

from rxstargate._context import ClientContext
from rxstargate._flow import Credit
from rxstargate._frames import (
    MessageFrame,
    decode_message,
    encode_permit,
)
from rxstargate._pulsar_time import parse_pulsar_time
from rxstargate._reconnect import reconnect
from rxstargate._seam import Transport
from rxstargate._settler import Settler
from rxstargate.exceptions import (
    AckError,
    ConnectionClosedError,
    ProtocolError,
    SchemaError,
    StalledStreamError,
    StargateError,
)
from rxstargate.models import Message, MessageId, TopicName
from rxstargate.streams import Stream, StreamHandle

__all__ = ["ReceiverSpec", "observe"]

log = logging.getLogger("rxstargate.receiver")

_PIN_TIMEOUT = 1.0  # seconds a reader from "latest" waits to learn where that was


@dataclass(frozen=True, slots=True)
class ReceiverSpec:
    """What to open: a consumer (with a subscription) or a reader."""

    topic: TopicName
    subscription: str | None
    query: dict[str, str]
    max_in_flight: int
    schema: Schema | None
    start: str | None = None  # readers: "earliest", "latest" or a wire message id
    stall_timeout: float | None = 30.0
    topics: tuple[str, str] | None = None  # v3: ("topics", "a,b") or ("topicsPattern", regex)
    deliver_schema_failures: bool = False
    on_open: Callable[[], None] | None = None  # called each time a socket opened


class _End:
    """The delivery queue's last item: complete (error None) or fail."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None) -> None:
        self.error = error


class _Session:
    def __init__(
        self, context: ClientContext, spec: ReceiverSpec, observer: abc.ObserverBase[Message[Any]]
    ) -> None:
        self._context = context
        self._spec = spec
        self._observer = observer
        self._kind = "consumer" if spec.subscription is not None else "reader"
        self._stopped = threading.Event()  # no more connecting or delivering
        self._lock = threading.Lock()
        self._conn: Transport | None = None
        self._settler: Settler | None = None
        self._last_id: str | None = None
        self._pinned: str | None = None  # where "latest" was when a reader first opened
        self._pin_entry: tuple[int, int] | None = None  # its (ledger, entry), skipped again
        self._skip_to_pin = False  # this socket was opened at the pin
        self._queue: queue.SimpleQueue[tuple[Settler, list[MessageFrame]] | _End] = (
            queue.SimpleQueue()
        )
        self._terminated = False
        self._stall_reported = False
        self._topics: dict[str, TopicName] = {}
        self._ending = False  # the delivery thread skips messages and waits for _End
        self._threads_left = 2  # receive and delivery: the stream is finished when both end
        name = spec.topic.topic
        self._receiver = threading.Thread(
            target=self._receive_loop, name=f"rxstargate-{self._kind}-{name}", daemon=True
        )
        self._delivery = threading.Thread(
            target=self._delivery_loop, name=f"rxstargate-delivery-{name}", daemon=True
        )
        self.handle = StreamHandle(
            self._kind, spec.topic, spec.subscription, self.begin_close, self.wait_closed
        )
        self._key = context.register(self.handle)

    def start(self) -> None:
        self._delivery.start()
        self._receiver.start()

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
            conn, settler = self._conn, self._settler
        if settler is not None:
            settler.kill()
        if conn is not None:
            conn.close()  # settles already queued still go out, then a close frame

    def wait_closed(self, deadline: float) -> None:
        current = threading.current_thread()
        if self._delivery is not current and self._delivery.ident is not None:
            now = time.monotonic()
            self._delivery.join(max(0.0, (deadline - now) / 2))
        self._close_socket()
        if self._receiver is not current and self._receiver.ident is not None:
            self._receiver.join(max(0.0, deadline - time.monotonic()))
            if self._receiver.is_alive():
                with self._lock:
                    conn = self._conn
                if conn is not None:
                    conn.abort()
                self._receiver.join(1.0)
        if self._delivery is not current and self._delivery.ident is not None:
            # The observer may be stuck in user code: never wait past the deadline for it.
            self._delivery.join(max(0.0, deadline - time.monotonic()))

    def _fail(self, error: Exception) -> None:
        """End with ``error`` from the receive thread."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
        self._context.unregister(self._key)
        self._queue.put(_End(error))

    # -- receive thread ----------------------------------------------------------------------

    def _url(self) -> str:
        spec = self._spec
        query = dict(spec.query)
        if spec.topics is not None and spec.subscription is not None:
            key, value = spec.topics
            query[key] = value
            return self._context.url_v3(spec.subscription, query)
        if spec.subscription is not None:
            return self._context.url("consumer", spec.topic, spec.subscription, query)
        start = self._last_id or self._pinned or spec.start
        # Only a socket reopened at the pin gets again what was there before the start.
        self._skip_to_pin = self._last_id is None and self._pin_entry is not None
        if start and start != "latest":
            query["messageId"] = start
        return self._context.url("reader", spec.topic, None, query)

    def _open(self) -> Transport:
        conn = self._context.open(self._url(), self._spec.topic.topic)
        credit = Credit(self._spec.max_in_flight) if self._kind == "consumer" else None
        settler = Settler(conn, credit, self._context)
        with self._lock:
            if self._stopped.is_set():
                conn.release()
                raise _Stopped()
            self._conn, self._settler = conn, settler
            if credit is not None:
                conn.send(encode_permit(credit.initial()))
        if self._spec.on_open is not None:
            self._spec.on_open()
        return conn

    def _thread_ended(self) -> None:
        with self._lock:
            self._threads_left -= 1
            finished = self._threads_left == 0
        if finished:
            self._context.finished(self._key)

    def _receive_loop(self) -> None:
        try:
            self._receive()
        except Exception as exc:  # a bug must end the stream, never leave it silent
            log.exception("the receive thread of %s on %s failed", self._kind, self._spec.topic)
            with self._lock:
                conn = self._conn
            if conn is not None:
                conn.release()
            self._fail(ProtocolError(f"the receive thread failed: {exc!r}"))
        finally:
            self._thread_ended()

    def _pin_latest(self) -> None:
        """Learn where "latest" was once a reader from there first opened.

        A reader that drops before its first message must reopen at that place, not at
        "latest" again, which would skip what was published while it was away. Asked right
        after the first socket opened (so the open is not delayed): the topic's last message
        id from the admin API. Reopening there, what the broker sends again up to that entry
        (a whole batch, when the id names no batch index) is skipped. When the server will
        not say in time, the reader keeps reopening at "latest" (README, Limits).
        """
        config = self._context.transport
        wait = min(config.connect_timeout, _PIN_TIMEOUT)
        try:
            last = self._context.last_message_id(
                self._spec.topic, replace(config, connect_timeout=wait)
            )
        except StargateError as exc:
            log.info("reader on %s: cannot learn where it starts (%s)", self._spec.topic, exc)
            return
        if last is None:
            self._pinned = "earliest"  # an empty topic: all that comes is new
        else:
            self._pinned = str(last)
            self._pin_entry = (last.ledger_id, last.entry_id)

    def _receive(self) -> None:
        pin = self._kind == "reader" and self._spec.start in (None, "latest")
        try:
            conn = self._open()
        except _Stopped:
            return
        except StargateError as exc:
            self._fail(exc)
            return
        if pin:
            self._pin_latest()
        while True:
            settler = self._settler
            assert settler is not None
            try:
                texts = conn.recv_batch()
            except ConnectionClosedError as exc:
                settler.kill()
                conn.release()
                if self._stopped.is_set():
                    return
                if exc.code == 1000 or not exc.retriable:
                    self._fail(exc if exc.code != 1000 else _NormalClose(exc))
                    return
                log.warning("%s on %s lost its connection: %s", self._kind, self._spec.topic, exc)
                try:
                    opened = reconnect(
                        self._open, self._context.backoff, self._stopped, str(self._spec.topic)
                    )
                except _Stopped:
                    return
                except StargateError as error:
                    self._fail(error)
                    return
                if opened is None:
                    return
                conn = opened
                continue
            if texts is None:
                settler.kill()
                conn.release()
                return
            self._queue.put((settler, self._decode(texts, settler)))

    def _decode(self, texts: list[str], settler: Settler) -> list[MessageFrame]:
        frames = []
        for text in texts:
            try:
                frame = decode_message(text)
            except ProtocolError as exc:
                if '"endOfTopic"' not in text:
                    self._context.report(exc)
                    settler.skip()
                continue
            if self._skip_to_pin and self._last_id is None and self._before_pin(frame):
                settler.skip()  # sent again from the pinned entry: it was there before the start
                continue
            frames.append(frame)
        if frames and self._kind == "reader":
            self._last_id = frames[-1].message_id
        return frames

    def _before_pin(self, frame: MessageFrame) -> bool:
        try:
            fields = MessageId(frame.message_id).fields
        except ValueError:
            return False
        assert self._pin_entry is not None
        return (fields.ledger_id, fields.entry_id) <= self._pin_entry

    # -- delivery thread ---------------------------------------------------------------------

    def _delivery_loop(self) -> None:
        try:
            self._deliver_until_end()
        finally:
            self._thread_ended()

    def _deliver_until_end(self) -> None:
        check = None if self._spec.stall_timeout is None else min(1.0, self._spec.stall_timeout)
        while True:
            try:
                item = self._queue.get(timeout=check)
            except queue.Empty:
                self._check_stall()
                continue
            if isinstance(item, _End):
                self._close_socket()
                self._terminate(item.error)
                return
            settler, frames = item
            for frame in frames:
                if self._ending or (not settler.alive and not settler.is_reader):
                    break
                if not self._deliver(frame, settler):
                    return

    def _check_stall(self) -> None:
        """Warn once per stall when all credit is held and nothing settled for a while."""
        settler = self._settler
        limit = self._spec.stall_timeout
        if settler is None or limit is None or not settler.saturated:
            self._stall_reported = False
            return
        idle = time.monotonic() - settler.last_settled
        if idle < limit or self._stall_reported:
            return
        self._stall_reported = True
        held = settler.unsettled
        self._context.report(
            StalledStreamError(
                f"the consumer on {self._spec.topic} holds all {held} messages of its credit"
                f" (max_in_flight) and settled none for {idle:.0f} s: a stage neither acks nor"
                " passes messages on (a filter that drops without acking, a buffer larger than"
                " max_in_flight, a missing acknowledger?)",
                topic=str(self._spec.topic),
                held=held,
            )
        )

    def _deliver(self, frame: MessageFrame, settler: Settler) -> bool:
        value, problem = self._load(frame)
        message = self._message(frame, settler, value, problem)
        settler.track(message)
        if problem is not None and not self._spec.deliver_schema_failures:
            self._context.report(
                SchemaError(
                    f"message {frame.message_id} on {self._spec.topic} does not match"
                    f" the schema (nacked): {problem}",
                    message_id=frame.message_id,
                )
            )
            with contextlib.suppress(AckError):
                settler.nack(message)
            return True
        try:
            self._observer.on_next(message)
        except Exception as exc:  # the user's callback: route it to on_error
            log.debug("observer raised %r; ending the subscription", exc)
            self.begin_close(False)
            self._terminate(exc)
            return False
        if settler.is_reader:
            settler.release(message)
        return True

    def _load(self, frame: MessageFrame) -> tuple[Any, str | None]:
        """The payload loaded by the stream's schema, or the reason it does not load."""
        schema = self._spec.schema
        if schema is None:
            return None, None
        try:
            return schema.load(json.loads(frame.payload)), None
        except ValidationError as exc:
            return None, str(exc.messages)
        except (ValueError, RecursionError) as exc:
            return None, str(exc) or type(exc).__name__

    def _message(
        self, frame: MessageFrame, settler: Settler, value: Any, problem: str | None
    ) -> Message[Any]:
        try:
            publish_time = parse_pulsar_time(frame.publish_time)
            event_time = parse_pulsar_time(frame.event_time) if frame.event_time else None
        except ValueError as exc:
            self._context.report(ProtocolError(f"bad time in message {frame.message_id}: {exc}"))
            publish_time, event_time = None, None
        return Message(
            topic=self._topic(frame.topic) if frame.topic else self._spec.topic,
            payload=frame.payload,
            message_id=MessageId._from_wire(frame.message_id),
            key=frame.key,
            properties=MappingProxyType(frame.properties),
            publish_time=publish_time,
            event_time=event_time,
            redelivery_count=frame.redelivery_count,
            value=value,
            schema_error=problem,
            _settler=settler,
        )

    def _topic(self, name: str) -> TopicName:
        """The topic a multi-topic frame names (parsed once per name)."""
        topic = self._topics.get(name)
        if topic is None:
            try:
                topic = TopicName.parse(name)
            except ValueError:
                topic = self._spec.topic
            if len(self._topics) < 10_000:
                self._topics[name] = topic
        return topic

    def _terminate(self, error: Exception | None) -> None:
        if self._terminated:
            return
        self._terminated = True
        if error is _DISPOSED:
            return
        if isinstance(error, _NormalClose):
            error = None
        try:
            if error is None:
                self._observer.on_completed()
            else:
                self._observer.on_error(error)
        except Exception:
            log.exception("an observer's terminal callback raised")


class _Stopped(Exception):
    """Opening was abandoned because the stream stopped meanwhile."""


class _NormalClose(Exception):
    """The server closed the socket normally: the stream completes."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))


_DISPOSED = _NormalClose(Exception("disposed"))


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
