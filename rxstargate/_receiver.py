"""Readers and consumers as cold Observables of Messages, with credit-based backpressure.

Each subscription opens its own socket and one receive thread
("rxstargate-consumer-<topic>" or "rxstargate-reader-<topic>"); the observer's callbacks run
on that thread, one at a time. A callback that raises ends the subscription with ``on_error``
(the exception), never up into rxstargate. Disposing the subscription closes its socket.

Consumers use Pulsar's pull mode: the server sends only what we permitted, and settling a
message (ack or nack) earns its permit back (see ``_flow``). Readers have no pull mode: the
server's window is ``receiverQueueSize`` and each ack frame frees one slot.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from marshmallow import Schema, ValidationError
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from rxstargate._context import ClientContext
from rxstargate._flow import Credit
from rxstargate._frames import decode_message, encode_ack, encode_nack, encode_permit
from rxstargate._pulsar_time import parse_pulsar_time
from rxstargate._reconnect import reconnect
from rxstargate._transport import Connection
from rxstargate.exceptions import (
    AckError,
    ConnectionClosedError,
    ProtocolError,
    SchemaError,
    StargateError,
)
from rxstargate.models import Message, MessageId, TopicName

__all__ = ["ReceiverSpec", "observe"]

log = logging.getLogger("rxstargate.receiver")


@dataclass(frozen=True, slots=True)
class ReceiverSpec:
    """What to open: a consumer (with a subscription) or a reader."""

    topic: TopicName
    subscription: str | None
    query: dict[str, str]
    max_in_flight: int
    schema: Schema | None
    start: str | None = None  # readers: "earliest", "latest" or a wire message id


class _Settler:
    """Settles messages on one socket; dead once that socket is gone."""

    def __init__(self, conn: Connection, credit: Credit | None) -> None:
        self._conn = conn
        self._credit = credit
        self._lock = threading.Lock()
        self._outstanding: dict[int, Message[Any]] = {}
        self.alive = True

    def track(self, message: Message[Any]) -> None:
        with self._lock:
            self._outstanding[id(message)] = message
            permits = self._credit.delivered() if self._credit is not None else 0
        if permits:
            self.send_permit(permits)

    def send_permit(self, permits: int) -> None:
        with contextlib.suppress(StargateError):  # a dead socket: the reader notices
            self._conn.send(encode_permit(permits))

    def ack(self, message: Message[Any]) -> None:
        self._settle(message, encode_ack(str(message.message_id)))

    def nack(self, message: Message[Any]) -> None:
        if self._credit is None:  # readers cannot nack: the frame just returns credit
            self._settle(message, encode_ack(str(message.message_id)))
        else:
            self._settle(message, encode_nack(str(message.message_id)))

    def _settle(self, message: Message[Any], frame: str) -> None:
        with self._lock:
            if id(message) not in self._outstanding:
                return  # settled before: idempotent
            if not self.alive:
                raise AckError(
                    f"message {message.message_id} came from a socket that is closed;"
                    " the broker will redeliver it"
                )
            del self._outstanding[id(message)]
            permits = self._credit.settled() if self._credit is not None else 0
            try:
                self._conn.send(frame)
                if permits:
                    self._conn.send(encode_permit(permits))
            except StargateError as exc:
                self.alive = False
                raise AckError(f"cannot settle message {message.message_id}: {exc}") from exc

    def kill(self) -> None:
        with self._lock:
            self.alive = False

    @property
    def unsettled(self) -> int:
        return len(self._outstanding)


class _Session:
    def __init__(
        self, context: ClientContext, spec: ReceiverSpec, observer: abc.ObserverBase[Message[Any]]
    ) -> None:
        self._context = context
        self._spec = spec
        self._observer = observer
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._settler: _Settler | None = None
        self._last_id: str | None = None
        kind = "consumer" if spec.subscription is not None else "reader"
        self._kind = kind
        self._thread = threading.Thread(
            target=self._run, name=f"rxstargate-{kind}-{spec.topic.topic}", daemon=True
        )
        self._handle = context.register(self.dispose)

    def start(self) -> None:
        self._thread.start()

    def dispose(self) -> None:
        self._stopped.set()
        self._context.unregister(self._handle)
        with self._lock:
            conn = self._conn
        if conn is not None:
            conn.abort()
        if self._thread is not threading.current_thread() and self._thread.ident is not None:
            self._thread.join(timeout=10)

    def _url(self) -> str:
        spec = self._spec
        query = dict(spec.query)
        if spec.subscription is not None:
            return self._context.url("consumer", spec.topic, spec.subscription, query)
        start = self._last_id or spec.start
        if start and start != "latest":
            query["messageId"] = start
        return self._context.url("reader", spec.topic, None, query)

    def _open(self) -> Connection:
        conn = self._context.open(self._url())
        with self._lock:
            if self._stopped.is_set():
                conn.abort()
            self._conn = conn
        credit = Credit(self._spec.max_in_flight) if self._kind == "consumer" else None
        self._settler = _Settler(conn, credit)
        if credit is not None:
            try:
                conn.send(encode_permit(credit.initial()))
            except StargateError:
                conn.release()
                raise
        return conn

    def _run(self) -> None:
        try:
            conn = self._open()
        except StargateError as exc:
            self._end(exc)
            return
        while True:
            try:
                text = conn.recv()
            except ConnectionClosedError as exc:
                conn.release()
                if self._settler is not None:
                    self._settler.kill()
                if self._stopped.is_set():
                    return
                if exc.code == 1000:
                    self._end(None)
                    return
                if not exc.retriable:
                    self._end(exc)
                    return
                log.warning("%s on %s lost its connection: %s", self._kind, self._spec.topic, exc)
                try:
                    opened = reconnect(
                        self._open, self._context.backoff, self._stopped, str(self._spec.topic)
                    )
                except StargateError as error:
                    self._end(error)
                    return
                if opened is None:
                    return
                conn = opened
                continue
            if text is None:
                conn.release()
                if self._settler is not None:
                    self._settler.kill()
                return
            if not self._deliver(text, conn):
                conn.abort()
                conn.release()
                if self._settler is not None:
                    self._settler.kill()
                return

    def _deliver(self, text: str, conn: Connection) -> bool:
        settler = self._settler
        assert settler is not None
        try:
            frame = decode_message(text)
        except ProtocolError as exc:
            if '"endOfTopic"' in text:
                return True
            self._context.report(exc)
            self._skip(text, conn)
            return True
        try:
            publish_time = parse_pulsar_time(frame.publish_time)
            event_time = parse_pulsar_time(frame.event_time) if frame.event_time else None
        except ValueError as exc:
            self._context.report(ProtocolError(f"bad time in frame {text[:200]!r}: {exc}"))
            publish_time, event_time = None, None
        value: Any = None
        problem: str | None = None
        if self._spec.schema is not None:
            try:
                value = self._spec.schema.load(json.loads(frame.payload))
            except (ValueError, ValidationError) as exc:
                problem = str(exc.messages if isinstance(exc, ValidationError) else exc)
        message: Message[Any] = Message(
            topic=self._spec.topic,
            payload=frame.payload,
            message_id=MessageId(frame.message_id),
            key=frame.key,
            properties=MappingProxyType(frame.properties),
            publish_time=publish_time,
            event_time=event_time,
            redelivery_count=frame.redelivery_count,
            value=value,
            _settler=settler,
        )
        settler.track(message)
        self._last_id = frame.message_id
        if problem is not None:
            self._context.report(
                SchemaError(
                    f"message {frame.message_id} on {self._spec.topic} does not match"
                    f" the schema (nacked): {problem}",
                    message_id=frame.message_id,
                )
            )
            with contextlib.suppress(AckError):
                message.nack()
            return True
        try:
            self._observer.on_next(message)
        except Exception as exc:  # the user's callback: route it to on_error
            log.debug("observer raised %r; ending the subscription", exc)
            self._end(exc)
            return False
        return True

    def _skip(self, text: str, conn: Connection) -> None:
        """Give back the credit of a frame we could not read, so flow never stalls."""
        settler = self._settler
        if settler is None or settler._credit is None:
            with contextlib.suppress(StargateError):
                conn.send(encode_ack(""))
            return
        with settler._lock:
            settler._credit.delivered()
            permits = settler._credit.settled()
        if permits:
            with contextlib.suppress(StargateError):
                conn.send(encode_permit(permits))

    def _end(self, error: Exception | None) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._context.unregister(self._handle)
        try:
            if error is None:
                self._observer.on_completed()
            else:
                self._observer.on_error(error)
        except Exception:
            log.exception("an observer's terminal callback raised")


def observe(context: ClientContext, spec: ReceiverSpec) -> Observable[Message[Any]]:
    """A cold Observable: each subscription opens its own consumer or reader socket."""

    def subscribe(
        observer: abc.ObserverBase[Message[Any]], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        try:
            session = _Session(context, spec, observer)
        except StargateError as exc:
            observer.on_error(exc)
            return Disposable()
        session.start()
        return Disposable(session.dispose)

    return Observable(subscribe)
