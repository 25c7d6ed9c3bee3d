"""Helpers for the local Pulsar tests: raw WebSocket frames against the gateway."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import websocket

TIMEOUT = 20.0
SENTINEL = b"sentinel"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def send_json(sock: websocket.WebSocket, frame: dict[str, Any]) -> None:
    sock.send(json.dumps(frame))


def recv_json(sock: websocket.WebSocket) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(sock.recv())
    return frame


def recv_text(
    sock: websocket.WebSocket, within: float = TIMEOUT, ping_every: float | None = None
) -> dict[str, Any]:
    """The next text frame as JSON, within ``within`` seconds, whatever control frames come.

    A socket's own timeout restarts with every frame read, pings included, so a gateway that
    pings would keep ``recv()`` waiting for ever; this waits ``within`` seconds in all. With
    ``ping_every`` it pings that often while it waits, as a client that keeps its socket from
    the idle timeout does.
    """
    deadline = time.monotonic() + within
    sock.settimeout(ping_every or 1.0)
    try:
        while time.monotonic() < deadline:
            try:
                opcode, frame = sock.recv_data_frame(control_frame=True)  # answers pings
            except websocket.WebSocketTimeoutException:
                if ping_every is not None:
                    sock.ping()
                continue
            if opcode == websocket.ABNF.OPCODE_TEXT:
                message: dict[str, Any] = json.loads(frame.data)
                return message
            assert opcode != websocket.ABNF.OPCODE_CLOSE, "the gateway closed the socket"
    finally:
        sock.settimeout(TIMEOUT)
    raise AssertionError(f"no frame arrived within {within} s")


def produce(
    sock: websocket.WebSocket, payloads: list[bytes], **fields: Any
) -> list[dict[str, Any]]:
    """Send all payloads pipelined (a reader thread collects acks); returns acks by context."""
    acks: dict[str, dict[str, Any]] = {}
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while len(acks) < len(payloads):
                ack = recv_json(sock)
                acks[ack["context"]] = ack
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    reader = threading.Thread(target=read, name="test-ack-reader")
    reader.start()
    for i, payload in enumerate(payloads):
        send_json(sock, {"payload": b64(payload), "context": str(i), **fields})
    reader.join(TIMEOUT * 3)
    assert not reader.is_alive(), "acks did not arrive"
    assert not errors, errors
    return [acks[str(i)] for i in range(len(payloads))]


def drain(sock: websocket.WebSocket, idle: float = 2.0, ack: bool = True) -> list[dict[str, Any]]:
    """Receive (and ack) until nothing arrives for ``idle`` seconds."""
    received: list[dict[str, Any]] = []
    sock.settimeout(idle)
    try:
        while True:
            message = recv_json(sock)
            received.append(message)
            if ack:
                send_json(sock, {"messageId": message["messageId"]})
    except websocket.WebSocketTimeoutException:
        pass
    finally:
        sock.settimeout(TIMEOUT)
    return received


#: How long to watch for a message that should not come (a frame beyond the socket's credit or
#: queue): the gateway sends what it may within milliseconds on loopback.
QUIET = 0.5


def arrivals(sock: websocket.WebSocket, expected: int, ack: bool = False) -> list[dict[str, Any]]:
    """The next ``expected`` messages, then any more that come within ``QUIET`` seconds.

    The ``expected`` ones may take the socket's whole timeout (under load they can take longer
    than ``QUIET``); extra ones make the list longer. With ``ack`` each message is acked.
    """
    received = []
    for _ in range(expected):
        received.append(recv_json(sock))
        if ack:
            send_json(sock, {"messageId": received[-1]["messageId"]})
    return received + drain(sock, idle=QUIET, ack=ack)


def _until(sock: websocket.WebSocket, message_id: str, ack: bool) -> list[dict[str, Any]]:
    """Receive until the message ``message_id`` comes; what came before it."""
    received = []
    while True:
        message = recv_json(sock)
        if ack:
            send_json(sock, {"messageId": message["messageId"]})
        if message["messageId"] == message_id:
            return received
        received.append(message)


class Raw:
    """Opens sockets to one gateway and speaks its frames."""

    def __init__(self, ws_url: str, broker_url: str | None) -> None:
        self.ws_url = ws_url
        self.broker_url = broker_url
        self._sockets: list[websocket.WebSocket] = []

    def url(self, kind: str, topic: str, subscription: str | None = None, **params: Any) -> str:
        domain, rest = topic.split("://", 1)
        path = f"/ws/v2/{kind}/{domain}/{rest}"
        if subscription is not None:
            path += "/" + quote(subscription, safe="")
        if params:
            path += "?" + urlencode({k: str(v) for k, v in params.items()})
        return self.ws_url + path

    def connect(self, url: str, **options: Any) -> websocket.WebSocket:
        options.setdefault("timeout", TIMEOUT)
        sock = websocket.create_connection(url, **options)
        self._sockets.append(sock)
        return sock

    def producer(self, topic: str, **params: Any) -> websocket.WebSocket:
        return self.connect(self.url("producer", topic, **params))

    def consumer(self, topic: str, subscription: str, **params: Any) -> websocket.WebSocket:
        params.setdefault("subscriptionInitialPosition", "Earliest")
        return self.connect(self.url("consumer", topic, subscription, **params))

    def reader(self, topic: str, **params: Any) -> websocket.WebSocket:
        params.setdefault("messageId", "earliest")
        return self.connect(self.url("reader", topic, **params))

    def before_sentinel(
        self, sock: websocket.WebSocket, topic: str, ack: bool = True
    ) -> list[dict[str, Any]]:
        """Publish a sentinel to ``topic`` now, then receive until it comes: what came before it.

        Whatever the gateway owed the socket before the sentinel was published (a redelivery,
        a copy of a message) comes before it, so no wait for a silence is needed. With ``ack``
        each message is acked (the sentinel too), which gives a consumer the credit for it.
        """
        return _until(sock, self._sentinel(topic), ack)

    def before_sentinel_comes_back(
        self, sock: websocket.WebSocket, topic: str
    ) -> list[dict[str, Any]]:
        """On a consumer with an ack timeout: what comes before a sentinel left unacked is back.

        The sentinel's ack timeout starts after every message delivered before it, so one of
        those that is still unsettled would be due back first.
        """
        sentinel = self._sentinel(topic)
        return _until(sock, sentinel, ack=False) + _until(sock, sentinel, ack=False)

    def _sentinel(self, topic: str) -> str:
        """Publish the sentinel; its message id."""
        producer = self.producer(topic)
        (sent,) = produce(producer, [SENTINEL])
        producer.close()
        message_id: str = sent["messageId"]
        return message_id

    def refusal(self, url: str, **options: Any) -> websocket.WebSocketBadStatusException:
        """The handshake refusal for ``url`` (fails the test if the upgrade succeeds)."""
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            self.connect(url, **options)
        return info.value

    b64 = staticmethod(b64)
    send = staticmethod(send_json)
    recv = staticmethod(recv_json)
    produce = staticmethod(produce)
    drain = staticmethod(drain)
    arrivals = staticmethod(arrivals)

    def close_all(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                sock.close(timeout=2)  # the server may have closed it first
            sock.shutdown()
        self._sockets.clear()


@pytest.fixture
def raw(pulsar: Any) -> Iterator[Raw]:
    """Raw-frame access to the session's local Pulsar gateway."""
    helper = Raw(pulsar.ws_url, pulsar.broker_url)
    yield helper
    helper.close_all()


@pytest.fixture
def broker_client(pulsar: Any) -> Iterator[Any]:
    """The official pulsar-client on the broker of the session's local Pulsar."""
    pulsar_client = pytest.importorskip("pulsar")
    if pulsar.broker_url is None:
        pytest.skip(
            "RXSTARGATE_WS_URL is set without RXSTARGATE_BROKER_URL: the official client"
            " of the interop tests needs the broker URL"
        )
    client = pulsar_client.Client(
        pulsar.broker_url,
        logger=pulsar_client.FileLogger(pulsar_client.LoggerLevel.Error, "/dev/null"),
    )
    yield client
    client.close()
