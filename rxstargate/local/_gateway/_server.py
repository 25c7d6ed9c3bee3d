"""The gateway: a websockets server speaking Pulsar's WebSocket API through one broker client."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any, Protocol
from urllib.parse import parse_qs

import pulsar
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from rxstargate.local._gateway._consumer import ConsumerSession
from rxstargate.local._gateway._params import (
    ConsumerParams,
    ParamError,
    ProducerParams,
    ReaderParams,
)
from rxstargate.local._gateway._paths import Endpoint, PathError, Route, parse_path
from rxstargate.local._gateway._producer import ProducerSession
from rxstargate.local._gateway._reader import ReaderSession
from rxstargate.local._gateway._refusals import creation_reason, creation_status
from rxstargate.local._gateway._subscriptions import (
    ProducerNames,
    SubscriptionBusyError,
    Subscriptions,
)

MAX_FRAME_BYTES = 1024 * 1024  # Pulsar's webSocketMaxTextFrameSize default
OPERATION_TIMEOUT_SECONDS = 15


# pulsar-lite's Key_Shared dispatch stops for good after a few dozen to a few hundred messages when
# a burst of unbatched messages with few distinct keys (or none) arrives for a consumer whose
# receiver queue is large (500 or more); with 100 or fewer it delivers everything. The socket's
# window still follows receiverQueueSize: only the broker-side prefetch is capped.
KEY_SHARED_BROKER_QUEUE = 100


def _broker_queue_size(params: ConsumerParams) -> int:
    if params.subscription_type == "Key_Shared":
        return min(params.receiver_queue_size, KEY_SHARED_BROKER_QUEUE)
    return params.receiver_queue_size


class Session(Protocol):
    """A socket's broker-side half."""

    async def run(self, connection: ServerConnection) -> None: ...

    async def close(self) -> None: ...


class _PingPong:
    async def run(self, connection: ServerConnection) -> None:
        async for _ in connection:
            pass  # websockets answers pings itself; text is ignored

    async def close(self) -> None:
        return None


class Refusal(Exception):
    """A handshake to refuse with an HTTP status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


_ROUTING = {
    "SinglePartition": "UseSinglePartition",
    "RoundRobinPartition": "RoundRobinDistribution",
    "CustomPartition": "UseSinglePartition",  # Pulsar ignores CustomPartition too
}


class Gateway:
    """Pulsar's WebSocket service on 127.0.0.1, backed by one ``pulsar.Client``.

    Args:
        broker_url: ``pulsar://host:port`` of the broker.
        port: the port to listen on; 0 picks a free one (see ``port`` after ``start``).
        token: when set, every upgrade must carry it (``Authorization: Bearer`` or ``?token=``).
        log_path: where the broker client logs (warnings and worse); None keeps it quiet.
    """

    def __init__(
        self,
        broker_url: str,
        port: int = 0,
        token: str | None = None,
        log_path: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.broker_url = broker_url
        self.host = host
        self.port = port
        self.token = token
        self._log_path = log_path
        self._client: Any = None
        self._server: Server | None = None
        self._subscriptions = Subscriptions()
        self._producer_names = ProducerNames()
        self._pending: dict[ServerConnection, Session] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Connect the broker client and start listening; returns the bound port."""
        if self._log_path:
            logger = pulsar.FileLogger(pulsar.LoggerLevel.Warn, self._log_path)
        else:
            logger = pulsar.FileLogger(pulsar.LoggerLevel.Error, "/dev/null")
        self._client = pulsar.Client(
            self.broker_url,
            operation_timeout_seconds=OPERATION_TIMEOUT_SECONDS,
            logger=logger,
        )
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,
            max_size=MAX_FRAME_BYTES,
            open_timeout=OPERATION_TIMEOUT_SECONDS + 5,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Close every socket and its broker-side half, then the broker client."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for session in list(self._pending.values()):
            await session.close()
        self._pending.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None

    # --- handshake -----------------------------------------------------------------------------
    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path, _, query_string = request.path.partition("?")
        try:
            route = parse_path(path)
            query = {k: v[0] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
            self._authenticate(request, query)
            session = await self._open(route, query)
        except PathError as exc:
            return connection.respond(exc.status, str(exc))
        except Refusal as exc:
            return connection.respond(exc.status, exc.reason)
        self._pending[connection] = session
        task = asyncio.create_task(self._reap(connection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    def _authenticate(self, request: Request, query: dict[str, str]) -> None:
        if self.token is None:
            return
        header = request.headers.get("Authorization")
        if header is None and "token" in query:
            token = query["token"]
            header = token if token.startswith("Bearer ") else f"Bearer {token}"
        if header != f"Bearer {self.token}":
            raise Refusal(401, "Failed to authenticate")

    async def _open(self, route: Route, query: dict[str, str]) -> Session:
        try:
            if route.endpoint is Endpoint.PRODUCER:
                return await self._open_producer(route.topic, ProducerParams.from_query(query))
            if route.endpoint is Endpoint.CONSUMER:
                if not route.subscription:
                    raise Refusal(400, "Empty subscription name")
                params = ConsumerParams.from_query(query)
                return await self._open_consumer(route.topic, route.subscription, params)
            if route.endpoint is Endpoint.READER:
                return await self._open_reader(route.topic, ReaderParams.from_query(query))
        except ParamError as exc:
            raise Refusal(400, f"Invalid query params: {exc}") from None
        return _PingPong()

    async def _open_producer(self, topic: str, params: ProducerParams) -> Session:
        if params.encryption_keys:
            raise Refusal(500, "Failed to create producer: encryption is not supported")
        kwargs: dict[str, Any] = {
            "producer_name": params.producer_name,
            "initial_sequence_id": params.initial_sequence_id,
            "send_timeout_millis": params.send_timeout_millis,
            "compression_type": getattr(pulsar.CompressionType, params.compression_type),
            "block_if_queue_full": False,
            "batching_enabled": params.batching_enabled,
            "message_routing_mode": getattr(
                pulsar.PartitionsRoutingMode, _ROUTING[params.message_routing_mode]
            ),
            "max_pending_messages": params.max_pending_messages,
            "max_pending_messages_across_partitions": params.max_pending_messages,
        }
        if params.batching_enabled:
            kwargs["batching_max_messages"] = params.batching_max_messages
            kwargs["batching_max_publish_delay_ms"] = params.batching_max_publish_delay
        name = params.producer_name
        if name is not None:
            try:
                await self._producer_names.acquire(topic, name)
            except SubscriptionBusyError as exc:
                raise Refusal(409, f"Failed to create producer: {exc}") from None
        try:
            producer = await asyncio.to_thread(self._client.create_producer, topic, **kwargs)
        except Exception as exc:
            if name is not None:
                self._producer_names.release(topic, name)
            raise Refusal(creation_status(exc), creation_reason("producer", exc)) from None
        if name is None:
            return ProducerSession(producer)
        names = self._producer_names
        return ProducerSession(
            producer, lambda: names.closing(topic, name), lambda: names.release(topic, name)
        )

    async def _open_consumer(
        self, topic: str, subscription: str, params: ConsumerParams
    ) -> Session:
        try:
            await self._subscriptions.acquire(topic, subscription, params.subscription_type)
        except SubscriptionBusyError as exc:
            raise Refusal(409, f"Failed to create consumer: {exc}") from None
        dead_letter = None
        if params.max_redeliver_count is not None or params.dead_letter_topic is not None:
            dead_letter = pulsar.ConsumerDeadLetterPolicy(
                params.max_redeliver_count or 0,
                params.dead_letter_topic or f"{topic}-{subscription}-DLQ",
            )
        kwargs: dict[str, Any] = {
            "consumer_type": getattr(
                pulsar.ConsumerType, params.subscription_type.replace("_", "")
            ),
            "receiver_queue_size": _broker_queue_size(params),
            "consumer_name": params.consumer_name,
            "negative_ack_redelivery_delay_ms": params.negative_ack_redelivery_delay,
            "initial_position": getattr(pulsar.InitialPosition, params.initial_position),
            "dead_letter_policy": dead_letter,
            "crypto_failure_action": getattr(
                pulsar.ConsumerCryptoFailureAction, params.crypto_failure_action
            ),
        }
        try:
            consumer = await asyncio.to_thread(
                self._client.subscribe, topic, subscription, **kwargs
            )
        except Exception as exc:
            self._subscriptions.release(topic, subscription, was_closing=False)
            raise Refusal(creation_status(exc), creation_reason("consumer", exc)) from None

        def closing() -> None:
            self._subscriptions.closing(topic, subscription)

        def closed() -> None:
            self._subscriptions.release(topic, subscription)

        return ConsumerSession(consumer, params, pulsar.MessageId.deserialize, closing, closed)

    async def _open_reader(self, topic: str, params: ReaderParams) -> Session:
        try:
            if params.message_id == "earliest":
                start = pulsar.MessageId.earliest
            elif params.message_id == "latest":
                start = pulsar.MessageId.latest
            else:
                start = pulsar.MessageId.deserialize(
                    base64.b64decode(params.message_id, validate=True)
                )
            reader = await asyncio.to_thread(
                self._client.create_reader,
                topic,
                start,
                receiver_queue_size=params.receiver_queue_size,
                reader_name=params.reader_name,
            )
        except (binascii.Error, ValueError, Exception) as exc:
            raise Refusal(500, creation_reason("reader", exc)) from None
        return ReaderSession(reader, params.receiver_queue_size)

    # --- sockets -------------------------------------------------------------------------------
    async def _handle(self, connection: ServerConnection) -> None:
        session = self._pending.get(connection)
        if session is None:
            return
        try:
            await session.run(connection)
        except ConnectionClosed:
            pass  # an abrupt disconnect is a normal end for the gateway
        finally:
            self._pending.pop(connection, None)
            await session.close()

    async def _reap(self, connection: ServerConnection) -> None:
        """Close the broker side of a socket whose handshake never completed."""
        await connection.wait_closed()
        session = self._pending.pop(connection, None)
        if session is not None:
            await session.close()
