"""The broker's end of each socket: producer, reader and pingpong endpoints, and their base.

A socket handles the frames its client sends (on the client's thread, under the broker's lock)
and writes frames into its :class:`~rxstargate.testing._transport.MemoryTransport`. Faults the
broker was told to inject (a frame lost with its connection) are applied here. The consumer
endpoint lives in :mod:`rxstargate.testing._consumer`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rxstargate._service_rules.paths import Route
from rxstargate.testing._topics import Topic
from rxstargate.testing._transport import MemoryTransport
from rxstargate.testing._wire import (
    FrameError,
    HandlerThrows,
    decode_send,
    end_of_topic_answer,
    error_ack,
    is_end_of_topic_query,
    ok_ack,
)

if TYPE_CHECKING:
    from rxstargate.testing._broker import Broker

__all__ = ["MAX_FRAME_BYTES", "PingPongSocket", "ProducerSocket", "ReaderSocket", "Socket"]

MAX_FRAME_BYTES = 1024 * 1024  # Pulsar's webSocketMaxTextFrameSize default


class Socket:
    """One accepted socket, broker side (a :class:`~rxstargate.testing._transport.ServerSide`).

    Attributes:
        kind: ``producer``, ``consumer``, ``reader`` or ``pingpong``.
        incoming: the fault kind that loses a frame from the client (see ``drop_next``).
    """

    kind = "socket"
    incoming = ""

    def __init__(self, broker: Broker, transport: MemoryTransport, route: Route) -> None:
        self.broker = broker
        self.transport = transport
        self.route = route
        self.gone = False

    @property
    def topics(self) -> tuple[str, ...]:
        """The full names of the topics this socket is on."""
        return self.route.topics or ((self.route.topic,) if self.route.topic else ())

    # -- what the transport calls, without the lock ------------------------------------------------

    def on_text(self, text: str) -> bool:
        with self.broker.lock:
            try:
                if self.gone:
                    return True  # the socket ended on this side: nobody reads it
                size = len(text.encode("utf-8"))
                if size > MAX_FRAME_BYTES:
                    detail = f"frame with {size} bytes exceeds limit of {MAX_FRAME_BYTES} bytes"
                    self.close(1009, detail)
                    return True
                if self.broker.faults.take_drop(self.incoming, self.topics):
                    self.cut(f"a {self.incoming} frame was lost")
                    return False
                self.handle(text)
                return True
            finally:
                self.broker.touch()

    def on_gone(self) -> None:
        with self.broker.lock:
            self.end()
            self.broker.touch()

    # -- what subclasses use, under the lock ------------------------------------------------------

    def handle(self, text: str) -> None:
        """One frame from the client."""

    def ended(self) -> None:
        """Release what the socket held (once, when it ends)."""

    def write(self, text: str, fault: str = "") -> bool:
        """Queue a frame for the client; False when a ``drop_next(fault)`` cut the socket."""
        if self.gone:
            return False
        if fault and self.broker.faults.take_drop(fault, self.topics):
            self.cut(f"a {fault} frame was lost")
            return False
        self.transport.push([text])
        return True

    def close(self, code: int | None, reason: str = "") -> None:
        """Close the socket from the server (``code`` None: no status, Pulsar's errors)."""
        self.transport.server_close(code, reason)
        self.end()

    def cut(self, reason: str) -> None:
        """Drop the socket as a network cut does."""
        self.transport.cut(reason)
        self.end()

    def end(self) -> None:
        """The socket is over: forget it and release what it held (idempotent)."""
        if self.gone:
            return
        self.gone = True
        self.broker.forget(self)
        self.ended()


class PingPongSocket(Socket):
    """``/ws/v2/pingpong``: answers pings (nothing to do in memory) and ignores text."""

    kind = "pingpong"


class ProducerSocket(Socket):
    """A producer: one ack per frame, messages stored in arrival order."""

    kind = "producer"
    incoming = "send"

    def __init__(
        self,
        broker: Broker,
        transport: MemoryTransport,
        route: Route,
        topic: Topic,
        name: str | None,
    ) -> None:
        super().__init__(broker, transport, route)
        self.topic = topic
        self.name = name
        if name is not None:
            topic.producer_names.add(name)

    def handle(self, text: str) -> None:
        try:
            frame = json.loads(text)
        except (ValueError, RecursionError) as exc:
            self.write(error_ack(3, str(exc) or type(exc).__name__, None))
            return
        try:
            context, publication = decode_send(frame)
        except FrameError as exc:
            self.write(error_ack(exc.code, str(exc), exc.context))
            return
        except HandlerThrows as exc:  # as Jetty does when Pulsar's handler throws
            self.close(1011, str(exc))
            return
        failure = self.broker.faults.take_send_failure(self.topic.name)
        if failure is not None:
            self.write(error_ack(8, failure, context))
            return
        entry = self.broker.publish(self.topic, publication)
        self.write(ok_ack(str(entry.message_id), context), "ack")

    def ended(self) -> None:
        if self.name is not None:
            self.topic.producer_names.discard(self.name)


class ReaderSocket(Socket):
    """A reader: delivers from its position within a window; any frame but isEndOfTopic acks."""

    kind = "reader"
    incoming = "settle"

    def __init__(
        self,
        broker: Broker,
        transport: MemoryTransport,
        route: Route,
        topic: Topic,
        position: int,
        window: int,
    ) -> None:
        super().__init__(broker, transport, route)
        self.topic = topic
        self.position = position
        self.window = window
        self.outstanding = 0
        topic.readers.append(self)

    def handle(self, text: str) -> None:
        if "isEndOfTopic" in text and is_end_of_topic_query(text):
            self.write(end_of_topic_answer(False))  # no topic is ever terminated
            return
        if self.outstanding > 0:
            self.outstanding -= 1
            self.pump()

    def pump(self) -> None:
        """Deliver what the window allows."""
        entries = self.topic.entries
        while not self.gone and self.outstanding < self.window and self.position < len(entries):
            entry = entries[self.position]
            self.position += 1
            self.outstanding += 1
            self.write(entry.frame(0), "message")

    def ended(self) -> None:
        if self in self.topic.readers:
            self.topic.readers.remove(self)
