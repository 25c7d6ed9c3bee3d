"""Cut connections: the gateway notices clients that are gone and lets what they held go.

Sockets go through a FaultProxy. ``reset(half_open=True)`` resets only the client's side: the
gateway's side stays open and silent, as when a client behind a proxy crashes and the proxy keeps
the connection (the proxy's host answers TCP, so only the idle timeout can tell, as in Pulsar).
A full ``reset()`` resets both sides.

These tests run their own local Pulsar, with an idle timeout of a second instead of 300, so
a silent peer is dropped within about a second, and with a data directory whose logs they read.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

from rxstargate.local import LocalPulsar
from tests.faults import FaultProxy, hard_close
from tests.local.conftest import Raw, recv_text

# One worker runs them all when the suite runs on several (pytest-xdist): they share the
# module's local Pulsar, which another worker would start again.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("local-faults")]

IDLE_SECONDS = 1.0
PING_SECONDS = 0.2  # how often a live test socket pings while it waits, well inside IDLE_SECONDS
GONE_WITHIN = 15.0  # generous: the gateway drops a silent peer after about a second here


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPulsar]:
    directory = tmp_path_factory.mktemp("faults")
    pulsar = LocalPulsar(data_dir=directory, idle_timeout=IDLE_SECONDS)
    # A vanished peer never answers the close of its idle session: waiting the default 2 s
    # for that answer would only make each test here wait longer before its peer is let go.
    pulsar.keepalive = dataclasses.replace(pulsar.keepalive, close_wait=0.2)
    with pulsar:
        yield pulsar


@pytest.fixture
def direct(local: LocalPulsar) -> Iterator[Raw]:
    helper = Raw(local.ws_url, local.broker_url)
    yield helper
    helper.close_all()


@pytest.fixture
def proxy(local: LocalPulsar) -> Iterator[FaultProxy]:
    with FaultProxy(local.port) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def proxied(proxy: FaultProxy, local: LocalPulsar) -> Iterator[Raw]:
    helper = Raw(proxy.ws_url, local.broker_url)
    yield helper
    helper.close_all()


def _payload(message: dict[str, Any]) -> bytes:
    return base64.b64decode(message["payload"])


def _publish(raw: Raw, topic: str, payloads: list[bytes], **fields: Any) -> None:
    sock = raw.producer(topic)
    assert all(ack["result"] == "ok" for ack in raw.produce(sock, payloads, **fields))
    sock.close()


def _eventually(attempt: Callable[[], Any], within: float = GONE_WITHIN) -> Any:
    """Retry ``attempt`` until it returns without a refusal; its last refusal if time runs out."""
    deadline = time.monotonic() + within
    while True:
        try:
            return attempt()
        except websocket.WebSocketBadStatusException:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def _recv(sock: websocket.WebSocket, within: float = 20.0) -> dict[str, Any]:
    """The next text frame, pinging while it waits (an idle socket is closed after
    IDLE_SECONDS here; the vanished ones cannot ping)."""
    return recv_text(sock, within, ping_every=PING_SECONDS)


def _settled(raw: Raw, sock: websocket.WebSocket) -> None:
    """Return once the gateway has handled every command sent on ``sock`` so far."""
    raw.send(sock, {"type": "isEndOfTopic"})
    while "endOfTopic" not in _recv(sock):
        pass


def _receive_until(
    raw: Raw, sock: websocket.WebSocket, wanted: set[bytes], ack: bool = True
) -> set[bytes]:
    """Receive (and ack) until every payload in ``wanted`` arrived; what arrived."""
    got: set[bytes] = set()
    while not wanted <= got:
        message = _recv(sock)  # fails if the rest does not come
        got.add(_payload(message))
        if ack:
            raw.send(sock, {"messageId": message["messageId"]})
    return got


def test_a_session_idle_both_ways_is_closed_as_pulsar_closes_it(
    direct: Raw, topic_name: str
) -> None:
    sock = direct.consumer(topic_name, "sub")  # nothing to deliver, and it sends nothing
    sock.settimeout(GONE_WITHIN)
    opcode, frame = sock.recv_data_frame(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert frame.data[:2] == (1001).to_bytes(2, "big")  # as Jetty closes an idle session
    assert frame.data[2:].startswith(b"Idle timeout expired: ")
    assert frame.data[2:].endswith(f"/{IDLE_SECONDS * 1000:.0f} ms".encode())
    _eventually(lambda: direct.consumer(topic_name, "sub"))  # its subscription was let go


def test_a_half_open_exclusive_consumer_is_released_with_its_unacked_messages(
    direct: Raw, proxied: Raw, proxy: FaultProxy, topic_name: str
) -> None:
    payloads = [str(i).encode() for i in range(10)]
    _publish(direct, topic_name, payloads)
    vanishing = proxied.consumer(topic_name, "sub", receiverQueueSize=4)
    first = [_recv(vanishing) for _ in range(3)]
    proxied.send(vanishing, {"messageId": first[0]["messageId"]})  # one acked, two held
    _settled(proxied, vanishing)
    assert proxy.reset(half_open=True) == 1

    # Refused (409) while the gateway still holds the subscription for the vanished socket.
    successor = _eventually(lambda: direct.consumer(topic_name, "sub"))
    got = _receive_until(direct, successor, set(payloads[1:]))
    assert got == set(payloads[1:])  # the held ones come again; the acked one does not


@pytest.mark.parametrize("subscription_type", ["Shared", "Key_Shared"])
def test_a_half_open_shared_consumer_gives_its_messages_to_the_others(
    direct: Raw, proxied: Raw, proxy: FaultProxy, topic_name: str, subscription_type: str
) -> None:
    payloads = [str(i).encode() for i in range(40)]
    vanishing = proxied.consumer(
        topic_name, "sub", subscriptionType=subscription_type, receiverQueueSize=5
    )
    _publish(direct, topic_name, payloads, key="one-key")
    _recv(vanishing)  # it holds messages now, and acks none
    assert proxy.reset(half_open=True) == 1

    survivor = direct.consumer(topic_name, "sub", subscriptionType=subscription_type)
    got = _receive_until(direct, survivor, set(payloads))
    assert got == set(payloads)


def test_a_half_open_named_producer_gives_its_name_back(
    direct: Raw, proxied: Raw, proxy: FaultProxy, topic_name: str
) -> None:
    vanishing = proxied.producer(topic_name, producerName="only-one")
    assert proxied.produce(vanishing, [b"a"])[0]["result"] == "ok"
    assert proxy.reset(half_open=True) == 1

    successor = _eventually(lambda: direct.producer(topic_name, producerName="only-one"))
    assert direct.produce(successor, [b"b"])[0]["result"] == "ok"


def test_key_shared_delivers_everything_through_connection_resets(
    direct: Raw, proxied: Raw, proxy: FaultProxy, topic_name: str
) -> None:
    # pulsar-lite blocks the keys of messages that a closing Key_Shared consumer held and then
    # dispatches them only on flow commands: without the gateway's remedy this stalls after
    # about one message per key once the first consumer is cut.
    payloads = [str(i).encode() for i in range(600)]
    direct.consumer(topic_name, "sub", subscriptionType="Key_Shared").close()
    producer = direct.producer(topic_name)
    for i, payload in enumerate(payloads):  # a pipelined burst over three keys
        direct.send(producer, {"payload": direct.b64(payload), "key": f"k{i % 3}"})
    assert all(direct.recv(producer)["result"] == "ok" for _ in payloads)
    got: set[bytes] = set()
    for cut in range(4):
        sock = proxied.consumer(
            topic_name, "sub", subscriptionType="Key_Shared", receiverQueueSize=50
        )
        for _ in range(100):  # take some, ack most, keep a few unacked, then cut
            message = _recv(sock)
            got.add(_payload(message))
            if int(_payload(message)) % 10:
                proxied.send(sock, {"messageId": message["messageId"]})
        assert proxy.reset() == 1, f"cut {cut}"
    last = direct.consumer(topic_name, "sub", subscriptionType="Key_Shared")
    got |= _receive_until(direct, last, set(payloads) - got)
    assert got == set(payloads)


def test_consumers_cut_mid_delivery_leave_no_failed_writes_in_the_log(
    local: LocalPulsar, direct: Raw, topic_name: str
) -> None:
    _publish(direct, topic_name, [bytes(2000) for _ in range(1500)])
    for i in range(8):
        sock = direct.consumer(topic_name, f"sub-{i}", subscriptionType="Shared")
        for _ in range(5):
            _recv(sock)  # the gateway is pushing its whole window now
        hard_close(sock.sock)  # a reset, while frames are still being written
    # Sentinel: every cut consumer was closed by the gateway once each subscription opens
    # again as Exclusive (a different type is refused while any consumer holds it).
    for i in range(8):
        _eventually(lambda i=i: direct.consumer(topic_name, f"sub-{i}")).close()
    assert local.directory is not None
    log = (Path(local.directory) / "gateway.log").read_text()
    assert "socket.send() raised exception" not in log
    assert "Traceback" not in log
    # Every line has a timestamp; each socket's lines say which socket it is and how it ended.
    stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) ")
    assert all(stamp.match(line) for line in log.splitlines()), log[-2000:]
    for i in range(8):
        assert f"consumer {topic_name} sub=sub-{i}: closed (connection lost)" in log
