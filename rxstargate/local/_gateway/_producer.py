"""The producer endpoint: one text frame in, one ack out, sends pipelined through the broker client.

Hot path: ``json.loads`` + ``base64`` per frame, ``send_async`` with a callback that runs on the
broker client's thread and queues the ack; acks are written in batches, one loop wake-up per batch.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from _pulsar import MessageBuilder
from pulsar.schema import BytesSchema
from websockets.asyncio.server import ServerConnection

from rxstargate._service_rules.send_frame import (
    HandlerThrows,
    SendFrameError,
    error_ack,
    ok_ack,
    read_send_frame,
)
from rxstargate.local._gateway._connection import accept_texts
from rxstargate.local._gateway._offloop import off_loop
from rxstargate.local._gateway._threadstate import keep_thread_state
from rxstargate.local._gateway._wire import Outbox

ACK_BUFFER_LIMIT = 4 * 1024 * 1024


# Pulsar's own names on this side: a refused frame, and one on which the handler throws.
FrameError = SendFrameError
UnhandledFrameError = HandlerThrows


def decode_send(frame: Any) -> tuple[str | None, bytes, dict[str, Any]]:
    """Turn a parsed send frame into (context, payload, send_async keyword arguments).

    Raises:
        FrameError: code 3 when the frame does not map onto Pulsar's ProducerMessage (no context
            is echoed then), code 7 for a bad payload or eventTime (with ``context`` set).
        UnhandledFrameError: for an eventTime at or before the epoch, on which Pulsar's
            handler throws.
    """
    send = read_send_frame(frame)
    kwargs: dict[str, Any] = {}
    if send.properties is not None:
        kwargs["properties"] = send.properties
    if send.key is not None:
        kwargs["partition_key"] = send.key
    if send.replication_clusters is not None:
        kwargs["replication_clusters"] = send.replication_clusters
    if send.deliver_at is not None:
        kwargs["deliver_at"] = send.deliver_at
    if send.deliver_after_ms is not None:
        kwargs["deliver_after"] = timedelta(milliseconds=send.deliver_after_ms)
    if send.event_time is not None:
        kwargs["event_timestamp"] = send.event_time
    return send.context, send.payload, kwargs


class ProducerSession:
    """One producer socket bound to one broker producer."""

    def __init__(
        self,
        producer: Any,
        on_closing: Callable[[], None] | None = None,
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        self._producer = producer
        self._send_built = _native_send(producer)
        self._on_closing = on_closing
        self._on_closed = on_closed
        self._closed = False

    async def run(self, connection: ServerConnection) -> None:
        """Serve send frames until the socket closes."""
        outbox = Outbox(asyncio.get_running_loop(), connection)
        transport = connection.transport

        def send_now(text: str) -> bool:
            # Left to the loop below: frames while acks pile up, and frames that end the socket.
            if transport.get_write_buffer_size() > ACK_BUFFER_LIMIT:
                return False
            try:
                self._send(text, outbox)
            except UnhandledFrameError:
                return False  # decoded again below, where the socket can be closed
            return True

        accept_texts(connection, send_now)
        try:
            async for text in connection:
                if transport.get_write_buffer_size() > ACK_BUFFER_LIMIT:
                    await connection.drain()  # a client that does not read its acks waits
                if not isinstance(text, str):
                    continue  # Pulsar ignores binary frames
                try:
                    self._send(text, outbox)
                except UnhandledFrameError as exc:
                    # As Jetty does when a handler throws: close with 1011 and the exception's
                    # class name (acks already queued go first).
                    outbox.flush()
                    await connection.close(1011, str(exc))
                    return
        finally:
            accept_texts(connection, None)

    def _send(self, text: str, outbox: Outbox) -> None:
        """Hand one send frame to the broker producer; a refused frame is answered at once.

        Raises:
            UnhandledFrameError: for a frame on which Pulsar's handler throws (nothing sent).
        """
        try:
            context, payload, kwargs = decode_send(json.loads(text))
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            outbox.put(error_ack(3, str(exc) or type(exc).__name__, None))
            return
        except FrameError as exc:
            outbox.put(error_ack(exc.code, str(exc), exc.context))
            return
        callback = _ack_callback(outbox, context)
        try:
            if kwargs or self._send_built is None:
                self._producer.send_async(payload, callback, **kwargs)
            else:  # a payload alone, as most frames are
                self._send_built(MessageBuilder().content(payload).build(), callback)
        except Exception as exc:  # the producer is closed or refused the message at once
            outbox.put(error_ack(8, str(exc) or type(exc).__name__, context))

    async def close(self) -> None:
        """Close the broker producer (pending sends fail and are not acked as ok)."""
        if self._closed:
            return
        self._closed = True
        if self._on_closing is not None:
            self._on_closing()
        with contextlib.suppress(Exception):  # already closed by the broker client
            await off_loop(self._producer.close, "close-producer")
        if self._on_closed is not None:
            self._on_closed()


def _native_send(producer: Any) -> Callable[[Any, Any], None] | None:
    """The broker client's own send_async, which takes a built message.

    The Python wrapper's send_async checks and builds a message field by field, about a tenth
    of the gateway's cost per send; a frame with a payload alone needs none of it. None when
    the producer has no such method, or a schema other than bytes (the wrapper is used then).
    """
    send = getattr(getattr(producer, "_producer", None), "send_async", None)
    if not callable(send) or not isinstance(getattr(producer, "_schema", None), BytesSchema):
        return None
    return send  # type: ignore[no-any-return]


def _ack_callback(outbox: Outbox, context: str | None) -> Any:
    def _on_sent(result: Any, message_id: Any) -> None:
        keep_thread_state()  # runs on the broker client's thread
        if result.name == "Ok":
            outbox.put(ok_ack(base64.b64encode(message_id.serialize()).decode("ascii"), context))
        else:
            outbox.put(error_ack(8, f"Failed to send message: {result.name}", context))

    return _on_sent
