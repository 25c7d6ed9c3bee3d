"""The gateway: a websockets server speaking Pulsar's WebSocket API through broker clients."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from rxstargate._service_rules.paths import Endpoint, PathError, parse_path, select_topics
from rxstargate.local._gateway._admin import AdminError, admin_topic, last_message_id
from rxstargate.local._gateway._brokers import OPERATION_TIMEOUT_SECONDS, BrokerClients
from rxstargate.local._gateway._catalog import TopicCatalog
from rxstargate.local._gateway._connection import GatewayConnection
from rxstargate.local._gateway._liveness import Watchdog
from rxstargate.local._gateway._opening import Opener, Session
from rxstargate.local._gateway._refusals import Refusal
from rxstargate.local._keepalive import Keepalive

log = logging.getLogger("rxstargate.gateway")

MAX_FRAME_BYTES = 1024 * 1024  # Pulsar's webSocketMaxTextFrameSize default

STOP_TIMEOUT = 10.0


class Gateway:
    """Pulsar's WebSocket service on 127.0.0.1, backed by broker clients (see ``_brokers``).

    Args:
        broker_url: ``pulsar://host:port`` of the broker.
        port: the port to listen on; 0 picks a free one (see ``port`` after ``start``).
        token: when set, every upgrade must carry it (``Authorization: Bearer`` or ``?token=``).
        log_path: where the broker clients log (warnings and worse); None keeps them quiet.
        host: the address to listen on.
        keepalive: how peers that are gone are found (``rxstargate.local._keepalive``).
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
        keepalive: Keepalive | None = None,
        broker_metadata: str | None = None,
    ) -> None:
        self.broker_url = broker_url
        self.host = host
        self.port = port
        self.token = token
        self.keepalive = keepalive or Keepalive()
        self._labels: dict[ServerConnection, str] = {}
        self._clients = BrokerClients(broker_url, log_path)
        self._opener = Opener(self._clients, TopicCatalog(broker_metadata))
        self._watchdog = Watchdog(self.keepalive, self._gone)
        self._server: Server | None = None
        self._pending: dict[ServerConnection, Session] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Connect the broker client and start listening; returns the bound port."""
        self._clients.main  # noqa: B018 - created now, not on the first socket
        keepalive = self.keepalive
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            create_connection=GatewayConnection,
            process_request=self._process_request,
            compression=None,
            ping_interval=keepalive.ping_interval,
            ping_timeout=keepalive.ping_timeout if keepalive.ping_interval else None,
            close_timeout=keepalive.close_timeout,
            max_size=MAX_FRAME_BYTES,
            open_timeout=OPERATION_TIMEOUT_SECONDS + 5,
            logger=logging.getLogger("rxstargate.gateway.websockets"),
        )
        self._spawn(self._watchdog.run())
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "listening on %s:%d for broker %s (%s)",
            self.host,
            self.port,
            self.broker_url,
            keepalive,
        )
        return self.port

    async def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Close every socket and its broker-side half, then the broker clients.

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
        # Each client on a thread of its own (the broker may keep a close waiting); closing a
        # client closes what is left, and its broker connection with a FIN.
        clients_closed = self._clients.close()
        while not all(e.is_set() for e in clients_closed) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        clean = clean and all(e.is_set() for e in clients_closed)
        if server is not None:  # the peers' answers, for as long as there is time
            await _within(server.wait_closed(), deadline)
        for task in self._tasks:
            task.cancel()  # the watchdog; handshakes' reapers end with their sockets
        if self._tasks:
            await _within(asyncio.gather(*self._tasks, return_exceptions=True), deadline)
        if not clean:
            log.warning("stopped with broker-side closes still pending after %.1f s", timeout)
        return clean

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _gone(self, connection: ServerConnection, reason: str, close: bool) -> None:
        """The watchdog found a peer that is gone: close its socket, or drop it."""
        label = self._labels.get(connection, _peer(connection))
        log.info("%s: %s", label, reason)
        if close:  # as Jetty ends an idle session for Pulsar: 1001, its reason
            self._spawn(connection.close(1001, reason))
        else:
            connection.transport.abort()

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
            session = await self._opener.open(route, query, peer)
        except PathError as exc:
            log.info("%s %s: refused %d: %s", peer, path, exc.status, exc)
            return connection.respond(exc.status, str(exc))
        except Refusal as exc:
            log.info("%s %s: refused %d: %s", peer, path, exc.status, exc.reason)
            return connection.respond(exc.status, exc.reason)
        self._labels[connection] = f"{peer} {route.label()}"
        self._pending[connection] = session
        self._watchdog.watch(connection)
        self._spawn(self._reap(connection))
        return None

    async def _admin(
        self, connection: ServerConnection, request: Request, path: str, query: dict[str, str]
    ) -> Response:
        """Answer an admin REST request (plain HTTP on the same port) with JSON."""
        peer = _peer(connection)
        try:
            self._authenticate(request, query)
            topic = admin_topic(path)
            client = self._clients.main
            body: dict[str, Any] = await asyncio.to_thread(last_message_id, client, topic)
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
        """Forget a socket once it closed; close the broker side of one whose handshake did not
        complete."""
        await connection.wait_closed()
        self._watchdog.forget(connection)
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
