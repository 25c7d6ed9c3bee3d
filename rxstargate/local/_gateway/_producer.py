"""The producer endpoint: one text frame in, one ack out, sends pipelined through the broker client.

Hot path: ``json.loads`` + ``base64`` per frame, ``send_async`` with a callback that runs on the
broker client's thread and queues the ack; acks are written in batches, one loop wake-up per batch.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import Callable
from typing import Any

from _pulsar import MessageBuilder
from pulsar.schema import BytesSchema
from websockets.asyncio.server import ServerConnection

from rxstargate._server_time import parse_time
from rxstargate._service_rules.jackson import JacksonError, java_long, java_string
from rxstargate.local._gateway._connection import accept_texts
from rxstargate.local._gateway._offloop import off_loop
from rxstargate.local._gateway._threadstate import keep_thread_state
from rxstargate.local._gateway._wire import Outbox

_OK = '{"result":"ok","messageId":"%s","context":%s,"errorCode":0,"schemaVersion":0}'
_OK_NO_CONTEXT = '{"result":"ok","messageId":"%s","errorCode":0,"schemaVersion":0}'
ACK_BUFFER_LIMIT = 4 * 1024 * 1024


class UnhandledFrameError(Exception):
    """A frame on which Pulsar's handler throws: Jetty then closes the socket with 1011.

    The close reason is the Java exception's simple class name, as Jetty writes it.
    """


class FrameError(Exception):
    """A frame the producer endpoint refuses, with Pulsar's WebSocketError code (3 or 7)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.context: str | None = None


def ok_ack(message_id: str, context: str | None) -> str:
    """An ``ok`` ack as Pulsar 2.8+ writes it (``errorCode`` and ``schemaVersion`` always 0)."""
    if context is None:
        return _OK_NO_CONTEXT % message_id
    return _OK % (message_id, json.dumps(context))


def error_ack(code: int, message: str | None, context: str | None) -> str:
    """A ``send-error:<code>`` ack, fields as Pulsar's ProducerAck writes them."""
    ack: dict[str, Any] = {"result": f"send-error:{code}"}
    if message is not None:
        ack["errorMsg"] = message
    if context is not None:
        ack["context"] = context
    ack["errorCode"] = 0
    ack["schemaVersion"] = 0
    return json.dumps(ack, separators=(",", ":"))


def _event_time(text: Any) -> int:
    if not isinstance(text, str):
        raise FrameError(3, "Cannot deserialize value of type `java.lang.String` for 'eventTime'")
    try:
        millis = parse_time(text)
    except ValueError as exc:
        raise FrameError(7, str(exc)) from None
    if millis <= 0:  # the message builder's eventTime() refuses it, uncaught by the handler
        raise UnhandledFrameError("IllegalArgumentException")
    return millis


def decode_send(frame: Any) -> tuple[str | None, bytes, dict[str, Any]]:
    """Turn a parsed send frame into (context, payload, send_async keyword arguments).

    Raises:
        FrameError: code 3 when the frame does not map onto Pulsar's ProducerMessage (no context
            is echoed then), code 7 for a bad payload or eventTime (with ``context`` set).
        UnhandledFrameError: for an eventTime at or before the epoch, on which Pulsar's
            handler throws.
    """
    if not isinstance(frame, dict):
        raise FrameError(3, "Cannot deserialize value of type `ProducerMessage` from non-object")
    try:
        context = java_string(frame.get("context"), "context")
    except JacksonError as exc:
        raise FrameError(3, str(exc)) from None
    try:
        payload_text = java_string(frame.get("payload"), "payload")
        properties = frame.get("properties")
        kwargs: dict[str, Any] = {}
        if properties is not None:
            if not isinstance(properties, dict):
                raise FrameError(
                    3, "Cannot deserialize value of type `java.util.Map` for 'properties'"
                )
            kwargs["properties"] = {
                str(k): java_string(v, "properties") or "" for k, v in properties.items()
            }
        key = java_string(frame.get("key"), "key")
        if key is not None:
            kwargs["partition_key"] = key
        clusters = frame.get("replicationClusters")
        if clusters is not None:
            if not isinstance(clusters, list):
                raise FrameError(3, "Cannot deserialize value of type `java.util.List`")
            kwargs["replication_clusters"] = [str(c) for c in clusters]
        deliver_at = java_long(frame.get("deliverAt"), "deliverAt")
        if deliver_at is not None and deliver_at > 0:
            kwargs["deliver_at"] = deliver_at
        event_time = frame.get("eventTime")
        if event_time is not None:
            kwargs["event_timestamp"] = _event_time(event_time)
        if payload_text is None:
            raise FrameError(7, "Invalid Base64 message-payload error=payload is missing")
        try:
            payload = base64.b64decode(payload_text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FrameError(7, f"Invalid Base64 message-payload error={exc}") from None
    except JacksonError as exc:
        error = FrameError(3, str(exc))
        error.context = context
        raise error from None
    except FrameError as exc:
        exc.context = context
        raise
    return context, payload, kwargs


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
            ctx = exc.context if exc.code != 3 else None
            outbox.put(error_ack(exc.code, str(exc), ctx))
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
