"""The gateway keeps peers that are alive but not reading, as Pulsar's WebSocket service does.

A peer that vanished is found by what its host's kernel answers (TCP keepalive, acknowledged
retransmissions) or by Pulsar's idle timeout, never by whether its program answers a ping:
most WebSocket libraries answer pings only while the program reads.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

from rxstargate.local import LocalPulsar
from rxstargate.local._gateway._liveness import TcpState, enable_tcp_keepalive, tcp_state, why_gone
from rxstargate.local._keepalive import Keepalive
from tests.local.conftest import Raw, recv_text

# The timings of the gateway under test, far shorter than the defaults so that a few seconds
# of not reading outlast each of them several times: pings every 0.1 s (a socket was dropped
# 0.3 s after a ping it did not answer), TCP keepalive probing after 1 s of silence, every 1 s
# (the kernel's shortest), the watchdog's look at each socket every WATCH_SECONDS (1 s).
PING_SECONDS = 0.1
FAST = Keepalive(ping_interval=PING_SECONDS, tcp_keepalive=(1, 1, 1))
NOT_READING_SECONDS = 3.0  # 30 ping intervals, 2 keepalive probes of an idle socket, 3 watches


def _more_than_socket_buffers_hold() -> int:
    """Payload bytes that outgrow the gateway's send buffer and a peer's receive buffer.

    The send buffer grows up to ``tcp_wmem``'s maximum; a receive buffer grows only as its
    program reads, so one that does not read keeps ``tcp_rmem``'s default. Plus 1 MiB.
    """
    try:
        send = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
        receive = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[1])
    except (OSError, ValueError, IndexError):  # not Linux: more than any default there
        return 8 << 20
    return send + receive + (1 << 20)


@pytest.fixture(scope="module")
def fast_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPulsar]:
    local = LocalPulsar(data_dir=tmp_path_factory.mktemp("keepalive"))
    local.keepalive = FAST
    with local:
        yield local


@pytest.fixture
def fast(fast_local: LocalPulsar) -> Iterator[Raw]:
    helper = Raw(fast_local.ws_url, fast_local.broker_url)
    yield helper
    helper.close_all()


@pytest.mark.integration
@pytest.mark.timeout(60)  # its own local Pulsar, then megabytes through it: CPU-bound under load
def test_a_peer_that_does_not_read_for_seconds_keeps_its_sockets(
    fast: Raw, topic_name: str
) -> None:
    # More than the socket buffers hold, so that the gateway's writes stall on a closed window
    # while the peer does not read: only its host's kernel answers the gateway then. (Shared:
    # pulsar-lite's Exclusive dispatcher now and then stops sending such a backlog until the
    # next message is published, see the README; the gateway nudges Shared ones.)
    count = _more_than_socket_buffers_hold() // 20_000 + 1  # a third more as base64 on the wire
    payloads = [i.to_bytes(2, "big") * 10_000 for i in range(count)]
    fast.produce(fast.producer(topic_name), payloads)
    consumer = fast.consumer(topic_name, "sub", subscriptionType="Shared")
    producer = fast.producer(topic_name)
    # Not reading is what is tested here: a plain websocket-client program busy elsewhere.
    # Slow (5 s on Linux's default buffers): these seconds, then 5 MB through a gateway that
    # acks one message at a time.
    time.sleep(NOT_READING_SECONDS)
    got = []
    for _ in payloads:
        message = recv_text(consumer)
        got.append(base64.b64decode(message["payload"]))
        fast.send(consumer, {"messageId": message["messageId"]})
    assert sorted(got) == payloads
    fast.send(producer, {"payload": "eA==", "context": "after"})  # a broken pipe before
    assert recv_text(producer)["result"] == "ok"


@pytest.mark.integration
def test_a_quiet_socket_gets_no_pings_so_a_receive_timeout_holds(raw: Raw, topic_name: str) -> None:
    # Pulsar's WebSocket service sends no pings unless configured to; the gateway's pings every
    # 4 s restarted websocket-client's receive timeout, so a blocked recv() never timed out.
    # Slow (5 s): the receive timeout must outlast the 4 s between those pings to catch them.
    sock = raw.consumer(topic_name, "sub")
    sock.settimeout(5.0)
    with pytest.raises(websocket.WebSocketTimeoutException):
        sock.recv_data_frame(control_frame=True)


def _state(**fields: Any) -> TcpState:
    return dataclasses.replace(TcpState(0.0, 0.0, 0), **fields)


def test_a_session_idle_both_ways_for_the_idle_timeout_is_closed_as_jetty_closes_it() -> None:
    keepalive = Keepalive(idle_timeout=300.0)
    assert why_gone(_state(since_received=299.9, since_sent=400.0), keepalive) is None
    assert why_gone(_state(since_received=400.0, since_sent=299.9), keepalive) is None
    verdict = why_gone(_state(since_received=300.0, since_sent=301.5), keepalive)
    assert verdict == ("Idle timeout expired: 300000/300000 ms", True)
    assert why_gone(_state(since_received=10**6, since_sent=10**6), Keepalive(None)) is None


def test_a_host_that_answers_no_retransmission_is_dropped_without_a_close_frame() -> None:
    keepalive = Keepalive(max_unanswered=6)
    assert why_gone(_state(unanswered=5), keepalive) is None
    reason, close = why_gone(_state(unanswered=6), keepalive) or ("", True)
    assert "answered none of the last 6" in reason
    assert close is False


@pytest.fixture
def connected() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname()[:2])
        accepted, _ = server.accept()
        with client, accepted:
            yield client, accepted


def test_the_kernel_answers_for_a_peer_that_does_not_read(
    connected: tuple[socket.socket, socket.socket],
) -> None:
    client, accepted = connected
    client.sendall(b"x")
    assert accepted.recv(1) == b"x"
    accepted.setblocking(False)
    with pytest.raises(BlockingIOError):  # the client never reads: its window closes
        while True:
            accepted.send(bytes(65536))
    state = tcp_state(accepted)
    assert state is not None
    assert state.since_received < 60
    assert state.unanswered == 0  # its host acknowledged everything it could take


class ClosedPseudoSocket:
    """What uvloop's transports give as their socket once the connection closed."""

    def getsockopt(self, *args: object) -> bytes:
        raise ValueError("negative file descriptor")


def test_a_socket_closed_under_uvloop_has_no_state_rather_than_an_error() -> None:
    assert tcp_state(ClosedPseudoSocket()) is None


def test_a_closed_socket_has_no_state(connected: tuple[socket.socket, socket.socket]) -> None:
    _, accepted = connected
    accepted.close()
    assert tcp_state(accepted) is None


def test_accepted_sockets_get_tcp_keepalive(connected: tuple[socket.socket, socket.socket]) -> None:
    _, accepted = connected
    enable_tcp_keepalive(accepted, Keepalive(tcp_keepalive=(7, 3, 4)))
    assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    if hasattr(socket, "TCP_KEEPIDLE"):
        options = (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT)
        assert [accepted.getsockopt(socket.IPPROTO_TCP, o) for o in options] == [7, 3, 4]


def test_keepalive_settings_survive_the_gateway_process_command_line() -> None:
    settings = Keepalive(
        idle_timeout=12.5,
        ping_interval=0.3,
        tcp_keepalive=(1, 2, 3),
        max_unanswered=4,
        close_wait=0.25,
    )
    parsed = dict(zip(settings.arguments()[::2], settings.arguments()[1::2], strict=True))
    again = Keepalive.from_arguments(
        float(parsed["--idle-timeout"]),
        float(parsed["--ping-interval"]),
        float(parsed["--ping-timeout"]),
        parsed["--tcp-keepalive"],
        int(parsed["--max-unanswered"]),
        float(parsed["--close-wait"]),
    )
    assert again == settings
    assert json.dumps(dataclasses.asdict(Keepalive())) == json.dumps(
        dataclasses.asdict(Keepalive.from_arguments(300.0, 0, 0, "5,2,3", 6))
    )
