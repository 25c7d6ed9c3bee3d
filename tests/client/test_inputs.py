"""Arguments, payloads and frames a user or a server gets wrong: clear errors, never a hang."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from websockets.sync.server import ServerConnection

import rxstargate as rs
from rxstargate.client import MAX_IN_FLIGHT

from .conftest import ScriptedPeer, Store, ack_every_message, message_frame

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

Peer = Callable[..., ScriptedPeer]
WAIT = 10.0


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://h:1", "ws:// or wss://"),
        ("ws://h:1/ws/v2/consumer", "base URL"),
        ("ws://h:1?token=abc", "query string"),
        ("ws://:1", "no host"),
        ("ws://bad host:1", "spaces"),
        ("ws://h:1\r\nX: y", "control"),
    ],
)
def test_a_bad_base_url_is_refused_clearly(url: str, problem: str) -> None:
    with pytest.raises(rs.ConfigurationError, match=problem) as caught:
        rs.Client(url)
    assert "abc" not in str(caught.value)  # a token in the URL is never echoed


def test_a_proxy_prefix_path_is_kept(scripted_peer: Peer) -> None:
    peer = scripted_peer(ack_every_message)
    with rs.Client(peer.url + "/pulsar/") as client:
        client.topic("t").producer().send(b"x")
    assert peer.paths[0].startswith("/pulsar/ws/v2/producer/persistent/public/default/t")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"connect_timeout": -1},
        {"ping_timeout": 0},
        {"write_timeout": timedelta(seconds=-1)},
        {"close_timeout": -0.5},
        {"ping_interval": "10"},
        {"max_send_bytes": 10},
        {"connect_timeout": float("inf")},
        {"write_timeout": float("nan")},
        {"close_timeout": 1e300},
        {"reconnect": 5},
        {"tls": "yes"},
        {"tls": rs.TlsOptions(ca_file="/nonexistent/ca.pem")},
        {"token": "secret\r\nX-Injected: yes"},
        {"token": "trailing-newline\n"},
    ],
)
def test_bad_settings_are_refused_before_any_traffic(kwargs: dict[str, Any]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(rs.ConfigurationError, match=name) as caught:
        rs.Client("ws://127.0.0.1:1", **kwargs)
    assert "secret" not in str(caught.value)  # a token is never echoed
    if name == "tls" and isinstance(kwargs["tls"], rs.TlsOptions):
        assert "/nonexistent/ca.pem" in str(caught.value)


def test_an_unparsable_url_is_a_configuration_error() -> None:
    with pytest.raises(rs.ConfigurationError, match="url"):
        rs.Client("ws://[::1")


@pytest.mark.parametrize("timeout", [-1, float("nan"), "5", float("inf")])
def test_bad_send_and_flush_timeouts_are_refused_before_sending(
    scripted_peer: Peer, timeout: Any
) -> None:
    store = Store()
    peer = scripted_peer(store)
    with rs.Client(peer.url) as client:
        producer = client.topic("t").producer()
        with pytest.raises(rs.ConfigurationError, match="timeout"):
            producer.send(b"x", timeout=timeout)
        with pytest.raises(rs.ConfigurationError, match="timeout"):
            producer.flush(timeout)
        assert producer.send(b"y").ok
    assert store.payloads == [b"y"]


@pytest.mark.parametrize(
    "message",
    [
        rs.OutgoingMessage(b"x", event_time="2024-01-01"),  # type: ignore[arg-type]
        rs.OutgoingMessage(b"x", event_time=1700000000),  # type: ignore[arg-type]
        rs.OutgoingMessage(b"x", deliver_at=1700000000),  # type: ignore[arg-type]
        rs.OutgoingMessage(b"x", deliver_after="soon"),  # type: ignore[arg-type]
        rs.OutgoingMessage(b"x", properties={"a": 1}),  # type: ignore[dict-item]
        rs.OutgoingMessage(b"x", key=5),  # type: ignore[arg-type]
    ],
)
def test_a_message_with_a_bad_field_fails_alone_and_the_producer_goes_on(
    scripted_peer: Peer, message: rs.OutgoingMessage
) -> None:
    import reactivex as rx

    store = Store()
    peer = scripted_peer(store)
    with rs.Client(peer.url) as client:
        observer = client.topic("t").producer()
        acks: list[rs.ProducerAck] = []
        ended: list[str] = []
        observer.acks.subscribe(acks.append, lambda e: ended.append(repr(e)), lambda: None)
        rx.from_iterable([b"a", message, b"c"]).subscribe(observer)  # flushes and closes
        producer = client.topic("t").producer()
        with pytest.raises(rs.SendError) as caught:
            producer.send(message)
        assert caught.value.result == rs.ClientResult.INVALID_PAYLOAD
        assert isinstance(producer.send_async(message).exception(WAIT), rs.SendError)
    assert sorted(a.result for a in acks) == ["client-error:invalid-payload", "ok", "ok"]
    assert ended == []
    assert store.payloads == [b"a", b"c"]


def test_observe_arguments_that_do_not_fit_are_refused() -> None:
    topic = rs.Client("ws://127.0.0.1:1").topic("t")
    with pytest.raises(rs.ConfigurationError, match="needs a subscription"):
        topic.observe(subscription_type="Shared")
    with pytest.raises(rs.ConfigurationError, match="message id"):
        topic.observe("sub", start=rs.MessageId.from_parts(1, 2))
    with pytest.raises(rs.ConfigurationError, match="contradicts"):
        topic.observe("sub", start="earliest", subscription_initial_position="Latest")
    with pytest.raises(rs.ConfigurationError, match="max_in_flight"):
        topic.observe("sub", max_in_flight=MAX_IN_FLIGHT + 1)
    with pytest.raises(rs.ConfigurationError, match="max_in_flight"):
        topic.producer(max_in_flight=10**8)
    with pytest.raises(rs.ConfigurationError, match="timeout"):
        topic.producer(timeout=-1)


def test_a_consumer_start_becomes_the_initial_position(scripted_peer: Peer) -> None:
    def serve(ws: ServerConnection) -> None:
        for _ in ws:
            pass

    peer = scripted_peer(serve)
    with rs.Client(peer.url) as client:
        handle = client.topic("t").observe("sub", start="earliest").subscribe(lambda _: None)
        peer.wait_connections(1)
        handle.dispose()
    assert "subscriptionInitialPosition=Earliest" in peer.paths[0]


def test_a_payload_too_large_fails_alone_before_sending(scripted_peer: Peer) -> None:
    peer = scripted_peer(ack_every_message)
    with rs.Client(peer.url) as client:
        producer = client.topic("t").producer()
        acks: list[rs.ProducerAck] = []
        producer.acks.subscribe(acks.append)
        assert producer.send(b"small").ok
        with pytest.raises(rs.SendError) as caught:
            producer.send(b"x" * 900_000)  # 1.2 MB once base64 and JSON are added
        assert caught.value.result == rs.ClientResult.PAYLOAD_TOO_LARGE
        assert producer.send(b"still fine").ok
        producer.on_completed()
    assert [a.result for a in acks] == ["ok", rs.ClientResult.PAYLOAD_TOO_LARGE, "ok"]
    assert len(peer.paths) == 1  # the socket was never closed


def test_a_message_repr_shows_a_short_preview() -> None:
    message: rs.Message[Any] = rs.Message(
        topic=rs.TopicName.parse("t"),
        payload=b"x" * 10_000,
        message_id=rs.MessageId.from_parts(1, 2),
        key="k",
    )
    text = repr(message)
    assert len(text) < 250
    assert "10000 bytes" in text and "key='k'" in text


def test_deeply_nested_json_from_the_server_is_a_malformed_frame(scripted_peer: Peer) -> None:
    def serve(ws: ServerConnection) -> None:
        ws.recv()  # the first permit
        ws.send("[" * 100_000)
        ws.send(message_frame(1))
        for _ in ws:
            pass

    peer = scripted_peer(serve)
    with rs.Client(peer.url) as client:
        errors: list[rs.StargateError] = []
        client.errors.subscribe(errors.append)
        got = threading.Event()
        handle = client.topic("t").observe("sub").subscribe(lambda _: got.set())
        assert got.wait(WAIT)  # the stream survived and delivered the next message
        handle.dispose()
    assert any(isinstance(e, rs.ProtocolError) for e in errors)


def test_a_frame_over_the_cap_ends_the_stream_without_reconnecting(scripted_peer: Peer) -> None:
    def serve(ws: ServerConnection) -> None:
        ws.recv()
        ws.send(message_frame(1, payload=b"y" * 3_000_000))  # 4 MB of base64
        for _ in ws:
            pass

    peer = scripted_peer(serve)
    with rs.Client(peer.url, max_frame_bytes=1024 * 1024) as client:
        failed: list[Exception] = []
        ended = threading.Event()
        client.topic("t").observe("sub").subscribe(
            on_error=lambda e: (failed.append(e), ended.set())
        )
        assert ended.wait(WAIT)
    assert isinstance(failed[0], rs.ConnectionClosedError)
    assert "over 1048576 bytes" in str(failed[0])
    assert len(peer.paths) == 1


def test_closed_sockets_are_not_kept_by_the_keepalive(scripted_peer: Peer) -> None:
    peer = scripted_peer(ack_every_message)
    with rs.Client(peer.url) as client:
        for _ in range(30):
            producer = client.topic("t").producer()
            producer.send(b"x")
            producer.close()
        assert client._context.keepalive.watched == 0


def test_a_permit_for_a_huge_window_is_never_sent(scripted_peer: Peer) -> None:
    permits: list[int] = []

    def serve(ws: ServerConnection) -> None:
        for text in ws:
            permits.append(json.loads(text).get("permitMessages", 0))

    peer = scripted_peer(serve)
    with rs.Client(peer.url) as client:
        handle = client.topic("t").observe("sub", max_in_flight=MAX_IN_FLIGHT).subscribe(print)
        deadline = time.monotonic() + WAIT
        while not permits and time.monotonic() < deadline:
            time.sleep(0.01)
        handle.dispose()
    assert permits and max(permits) <= MAX_IN_FLIGHT


def test_messages_refused_after_a_producer_failed_are_reported(scripted_peer: Peer) -> None:
    """Its acks stream ended with the failure: what comes later goes to client.errors."""

    def ack_one_then_drop(ws: ServerConnection) -> None:
        peer.refuse = (503, "down")  # every reconnect is refused from now on
        frame = json.loads(next(iter(ws)))
        ws.send(json.dumps({"result": "ok", "messageId": "CAEQAA==", "context": frame["context"]}))
        ws.close()

    peer = scripted_peer(ack_one_then_drop)
    give_up = rs.Backoff(initial=0.01, cap=0.02, give_up_after=0.05)
    with rs.Client(peer.url, reconnect=give_up) as client:
        reported: list[rs.StargateError] = []
        client.errors.subscribe(reported.append)
        producer = client.topic("t").producer()
        ended = threading.Event()
        producer.acks.subscribe(on_error=lambda _: ended.set())
        assert producer.send(b"first").ok
        assert ended.wait(WAIT)  # the producer gave up reconnecting
        for i in range(3):
            producer.on_next(f"later-{i}".encode())
        with pytest.raises(rs.ServerError, match="503"):  # the failure it ended with
            producer.flush(1)
    assert len(reported) == 3
    assert all(isinstance(e, rs.SendError) and "t" in str(e) for e in reported)


@pytest.mark.parametrize("names", [3, None, [3]])
def test_topics_of_the_wrong_kind_are_refused(names: Any) -> None:
    with pytest.raises(rs.ConfigurationError):  # InvalidTopicNameError is one too
        rs.Client("ws://127.0.0.1:1").topics(names)


def test_a_failure_its_caller_already_got_is_not_reported_again(scripted_peer: Peer) -> None:
    peer = scripted_peer(ack_every_message)
    with rs.Client(peer.url) as client:
        reported: list[rs.StargateError] = []
        client.errors.subscribe(reported.append)
        producer = client.topic("t").producer()
        with pytest.raises(rs.SendError):
            producer.send(b"x" * 2_000_000)
        assert isinstance(producer.send_async(b"x" * 2_000_000).exception(WAIT), rs.SendError)
        producer.on_next(b"x" * 2_000_000)  # nobody observes acks: this one is reported
    assert len(reported) == 1


def test_url_schemes_are_case_insensitive() -> None:
    assert rs.Client("WS://127.0.0.1:1").url == "ws://127.0.0.1:1"
