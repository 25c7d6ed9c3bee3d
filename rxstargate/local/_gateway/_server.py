"""The gateway: a websockets server speaking Pulsar's WebSocket API through one broker client."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import threading
import time
from typing import Any, Protocol
from urllib.parse import parse_qs

import pulsar
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from rxstargate.local._gateway._admin import AdminError, admin_topic, last_message_id
from rxstargate.local._gateway._catalog import PatternError, TopicCatalog
from rxstargate.local._gateway._consumer import ConsumerSession
from rxstargate.local._gateway._params import (
    ConsumerParams,
    ParamError,
    ProducerParams,
    ReaderParams,
)
from rxstargate.local._gateway._paths import (
    Endpoint,
    PathError,
    Route,
    parse_path,
    select_topics,
)
from rxstargate.local._gateway._producer import ProducerSession
from rxstargate.local._gateway._reader import ReaderSession
from rxstargate.local._gateway._redelivery import BROKER_NACK_DELAY_MS
from rxstargate.local._gateway._refusals import creation_reason, creation_status
from rxstargate.local._gateway._subscriptions import (
    ProducerNames,
    SubscriptionBusyError,
    Subscriptions,
)
from rxstargate.local._keepalive import CLOSE_TIMEOUT, PING_INTERVAL, PING_TIMEOUT

log = logging.getLogger("rxstargate.gateway")

MAX_FRAME_BYTES = 1024 * 1024  # Pulsar's webSocketMaxTextFrameSize default
OPERATION_TIMEOUT_SECONDS = 15

STOP_TIMEOUT = 10.0


# pulsar-lite's Key_Shared dispatch stops for good after a few dozen to a few hundred messages when
# a burst of unbatched messages with few distinct keys (or none) arrives for a consumer whose
# receiver queue is large (500 or more); with 100 or fewer it delivers everything. The socket's
# window still follows receiverQueueSize: only the broker-side prefetch is capped.
KEY_SHARED_BROKER_QUEUE = 100


def _key_shared_policy() -> Any:
    """Key_Shared without pulsar-lite's redelivery blocking, which stalls a subscription for good.

    When a Key_Shared consumer goes away holding unacked messages (or nacks one), pulsar-lite
    queues them for redelivery and blocks their keys: it hands out one message per key and lets
    the next one go only after that one is acknowledged, but an acknowledgement does not make it
    dispatch again (only a flow command, a new message or a consumer leaving does). A consumer
    whose window is not yet half used sends no flow command, so the subscription stops for good
    after one message per key. With out-of-order delivery allowed the keys are not blocked;
    redeliveries still go first, so a socket still sees each key in order. (pulsar-lite keeps
    the policy of a subscription's first consumer since it started: one first joined by another
    client without this setting keeps the blocking.)
    """
    return pulsar.ConsumerKeySharedPolicy(allow_out_of_order_delivery=True)


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
        ping_interval: seconds between pings to each socket (None: no pings).
        ping_timeout: seconds a socket has to answer a ping before it is dropped (None: wait).
        close_timeout: seconds to wait for a peer's answer to a close frame.
        broker_metadata: pulsar-lite's metadata file, where ``topicsPattern`` finds topics.
    """

    def __init__(
        self,
        broker_url: str,
        port: int = 0,
        token: str | None = None,
        log_path: str | None = None,
        host: str = "127.0.0.1",
        *,
        ping_interval: float | None = PING_INTERVAL,
        ping_timeout: float | None = PING_TIMEOUT,
        close_timeout: float = CLOSE_TIMEOUT,
        broker_metadata: str | None = None,
    ) -> None:
        self.broker_url = broker_url
        self.host = host
        self.port = port
        self.token = token
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self._log_path = log_path
        self._labels: dict[ServerConnection, str] = {}
        self._client: Any = None
        self._server: Server | None = None
        self._subscriptions = Subscriptions()
        self._producer_names = ProducerNames()
        self._catalog = TopicCatalog(broker_metadata)
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
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            close_timeout=self.close_timeout,
            max_size=MAX_FRAME_BYTES,
            open_timeout=OPERATION_TIMEOUT_SECONDS + 5,
            logger=logging.getLogger("rxstargate.gateway.websockets"),
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "listening on %s:%d for broker %s (pings every %s s, %s s to answer)",
            self.host,
            self.port,
            self.broker_url,
            self.ping_interval,
            self.ping_timeout,
        )
        return self.port

    async def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Close every socket and its broker-side half, then the broker client.

        Each step gets what is left of ``timeout`` (a stalled broker cannot hold it longer).

        Returns:
            True when everything closed in time; False when something was left behind (the
            caller then ends the process: broker-side closes may still be running in threads).
        """
        deadline = time.monotonic() + timeout
        server, self._server = self._server, None
        if server is not None:
            server.close()  # stops accepting; sends every socket a close frame (1001)
        # The broker sides close now, not after each peer answered its close frame.
        sessions = list(self._pending.values())
        self._pending.clear()
        closing = asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        clean = await _within(closing, deadline - 0.4 * timeout)
        if self._client is not None:
            # Its own thread: the shared executor may be full of closes waiting on the broker.
            # Closing the client closes what is left, and its broker connection with a FIN.
            client, self._client = self._client, None
            closed = threading.Event()

            def close_client() -> None:
                try:
                    client.close()
                except Exception as exc:
                    log.warning("closing the broker client failed: %s", exc)
                finally:
                    closed.set()

            threading.Thread(
                target=close_client, name="rxstargate-gateway-close", daemon=True
            ).start()
            while not closed.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            clean = clean and closed.is_set()
        if server is not None:  # the peers' answers, for as long as there is time
            await _within(server.wait_closed(), deadline)
        if self._tasks:
            await _within(asyncio.gather(*self._tasks, return_exceptions=True), deadline)
        if not clean:
            log.warning("stopped with broker-side closes still pending after %.1f s", timeout)
        return clean

    # --- handshake -----------------------------------------------------------------------------
    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path, _, query_string = request.path.partition("?")
        peer = _peer(connection)
        query = {k: v[0] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        if path.startswith("/admin/"):
            return await self._admin(connection, request, path, query)
        try:
            route = parse_path(path)
            if route.endpoint is Endpoint.MULTI_TOPIC_CONSUMER:
                route = select_topics(route, query)
            self._authenticate(request, query)
            session = await self._open(route, query, peer)
        except PathError as exc:
            log.info("%s %s: refused %d: %s", peer, path, exc.status, exc)
            return connection.respond(exc.status, str(exc))
        except Refusal as exc:
            log.info("%s %s: refused %d: %s", peer, path, exc.status, exc.reason)
            return connection.respond(exc.status, exc.reason)
        self._labels[connection] = f"{peer} {route.label()}"
        self._pending[connection] = session
        task = asyncio.create_task(self._reap(connection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def _admin(
        self, connection: ServerConnection, request: Request, path: str, query: dict[str, str]
    ) -> Response:
        """Answer an admin REST request (plain HTTP on the same port) with JSON."""
        peer = _peer(connection)
        try:
            self._authenticate(request, query)
            topic = admin_topic(path)
            body: dict[str, Any] = await asyncio.to_thread(last_message_id, self._client, topic)
            status = 200
        except (Refusal, AdminError) as exc:
            status, body = exc.status, {"reason": exc.reason}
        log.info("%s GET %s: %d %s", peer, path, status, json.dumps(body))
        return _json_response(connection, status, body)

    def _authenticate(self, request: Request, query: dict[str, str]) -> None:
        if self.token is None:
            return
        header = request.headers.get("Authorization")
        if header is None and "token" in query:
            token = query["token"]
            header = token if token.startswith("Bearer ") else f"Bearer {token}"
        if header != f"Bearer {self.token}":
            raise Refusal(401, "Failed to authenticate")

    async def _open(self, route: Route, query: dict[str, str], peer: str) -> Session:
        try:
            if route.endpoint is Endpoint.PRODUCER:
                return await self._open_producer(route.topic, ProducerParams.from_query(query))
            if route.endpoint is Endpoint.CONSUMER:
                if not route.subscription:
                    raise Refusal(400, "Empty subscription name")
                params = ConsumerParams.from_query(query)
                return await self._open_consumer(
                    (route.topic,), route.subscription, params, dead_letter_base=route.topic
                )
            if route.endpoint is Endpoint.MULTI_TOPIC_CONSUMER:
                return await self._open_multi_topic_consumer(route, query, peer)
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
        self._catalog.note([topic])
        if name is None:
            return ProducerSession(producer)
        names = self._producer_names
        return ProducerSession(
            producer, lambda: names.closing(topic, name), lambda: names.release(topic, name)
        )

    async def _open_multi_topic_consumer(
        self, route: Route, query: dict[str, str], peer: str
    ) -> Session:
        """A v3 socket: the topics listed, or those the pattern matches now."""
        if not route.subscription:
            raise Refusal(400, "Empty subscription name")
        params = ConsumerParams.from_query(query)
        topics = route.topics
        dead_letter_base: str | None = route.topic
        if route.pattern is not None:
            try:
                matched = await asyncio.to_thread(self._catalog.match, route.pattern, route.topic)
            except PatternError as exc:
                raise Refusal(400, f"Invalid query params: {exc}") from None
            topics = tuple(matched)
            # Pulsar would name the dead-letter topic after the pattern; the broker client's
            # default (each topic's own <topic>-<subscription>-DLQ) is a topic name at least.
            dead_letter_base = None
            log.info(
                "%s %s: matches %d topics: %s",
                peer,
                route.label(),
                len(topics),
                ", ".join(topics) or "none yet",
            )
        return await self._open_consumer(
            topics, route.subscription, params, dead_letter_base=dead_letter_base, multi=True
        )

    async def _open_consumer(
        self,
        topics: tuple[str, ...],
        subscription: str,
        params: ConsumerParams,
        *,
        dead_letter_base: str | None,
        multi: bool = False,
    ) -> Session:
        """One broker consumer on one topic (v1, v2) or on several (v3, ``multi``)."""
        try:
            await self._subscriptions.acquire(topics, subscription, params.subscription_type)
        except SubscriptionBusyError as exc:
            raise Refusal(409, f"Failed to create consumer: {exc}") from None
        target: str | list[str] = list(topics) if multi else topics[0]
        dead_letter = None
        if params.max_redeliver_count is not None:
            dead_letter_topic = params.dead_letter_topic
            if dead_letter_topic is None and dead_letter_base is not None:
                dead_letter_topic = f"{dead_letter_base}-{subscription}-DLQ"
            dead_letter = pulsar.ConsumerDeadLetterPolicy(
                params.max_redeliver_count, dead_letter_topic
            )
        kwargs: dict[str, Any] = {
            "consumer_type": getattr(
                pulsar.ConsumerType, params.subscription_type.replace("_", "")
            ),
            "receiver_queue_size": _broker_queue_size(params),
            "consumer_name": params.consumer_name,
            # The socket's own delay runs in ConsumerSession (see _redelivery).
            "negative_ack_redelivery_delay_ms": BROKER_NACK_DELAY_MS,
            "initial_position": getattr(pulsar.InitialPosition, params.initial_position),
            "dead_letter_policy": dead_letter,
            "crypto_failure_action": getattr(
                pulsar.ConsumerCryptoFailureAction, params.crypto_failure_action
            ),
        }
        try:
            if params.subscription_type == "Key_Shared":
                kwargs["key_shared_policy"] = _key_shared_policy()
            consumer = await asyncio.to_thread(
                self._client.subscribe, target, subscription, **kwargs
            )
        except Exception as exc:
            self._subscriptions.release(topics, subscription, was_closing=False)
            raise Refusal(creation_status(exc), creation_reason("consumer", exc)) from None
        self._catalog.note(topics)

        def closing() -> None:
            self._subscriptions.closing(topics, subscription)

        def closed() -> None:
            self._subscriptions.release(topics, subscription)

        kick = None
        if params.subscription_type == "Shared":

            def kick() -> None:
                # Joins with no permits (gets nothing) and leaves: the broker dispatches again.
                helper = self._client.subscribe(
                    target,
                    subscription,
                    consumer_type=pulsar.ConsumerType.Shared,
                    receiver_queue_size=0,
                )
                helper.close()

        return ConsumerSession(
            consumer,
            params,
            pulsar.MessageId.deserialize,
            closing,
            closed,
            kick,
            multi_topic=multi,
        )

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
        self._catalog.note([topic])
        return ReaderSession(reader, params.receiver_queue_size)

    # --- sockets -------------------------------------------------------------------------------
    async def _handle(self, connection: ServerConnection) -> None:
        session = self._pending.get(connection)
        if session is None:
            return
        label = self._labels.get(connection, _peer(connection))
        log.info("%s: open", label)
        try:
            await session.run(connection)
        except ConnectionClosed:
            pass  # an abrupt disconnect is a normal end for the gateway
        except Exception:
            log.exception("%s: failed", label)
        finally:
            self._pending.pop(connection, None)
            await session.close()
            log.info("%s: closed (%s)", label, _why_closed(connection))
            self._labels.pop(connection, None)

    async def _reap(self, connection: ServerConnection) -> None:
        """Close the broker side of a socket whose handshake never completed."""
        await connection.wait_closed()
        self._labels.pop(connection, None)
        session = self._pending.pop(connection, None)
        if session is not None:
            await session.close()


async def _within(awaitable: Any, deadline: float) -> bool:
    """Await until ``deadline`` (monotonic); False if it had to be abandoned."""
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            await awaitable
    except TimeoutError:
        return False
    return True


def _json_response(connection: ServerConnection, status: int, body: dict[str, Any]) -> Response:
    response = connection.respond(status, json.dumps(body, separators=(",", ":")))
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response


def _peer(connection: ServerConnection) -> str:
    try:
        host, port = connection.remote_address[:2]
    except (TypeError, ValueError):
        return "?"
    return f"{host}:{port}"


def _why_closed(connection: ServerConnection) -> str:
    protocol = connection.protocol
    if protocol.close_rcvd_then_sent:
        return f"by the client: {protocol.close_rcvd}"
    if protocol.close_sent is not None:
        return f"by the gateway: {protocol.close_sent}"
    if protocol.close_rcvd is not None:
        return f"by the client: {protocol.close_rcvd}"
    if protocol.state is State.OPEN:
        return "by the gateway"
    return "connection lost"
