"""Consumers and readers against a scripted WebSocket peer: credit, settling, drops, bad frames."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from marshmallow import Schema, fields
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

import rxstargate as rs

from .conftest import ScriptedPeer, SilentPeer, drop, message_frame, send_empty_close

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

FAST = rs.Backoff(initial=0.01, cap=0.05, give_up_after=2.0)
Peer = Callable[..., ScriptedPeer]
WAIT = 10.0


class FakeConsumer:
    """A consumer endpoint that honours permits and records every command."""

    def __init__(self, frames: list[str], pull: bool = True) -> None:
        self.frames = frames
        self.pull = pull
        self.commands: queue.Queue[dict[str, Any]] = queue.Queue()
        self.permits = 0
        self.sent = 0
        self.on_connect: Callable[[ServerConnection, int], bool] | None = None
        self.connections = 0

    def __call__(self, ws: ServerConnection) -> None:
        self.connections += 1
        credit = 0 if self.pull else 10**9
        while True:
            if credit > 0 and self.sent < len(self.frames):
                ws.send(self.frames[self.sent])
                self.sent += 1
                credit -= 1
                if self.on_connect is not None and not self.on_connect(ws, self.sent):
                    return
                continue
            try:
                text = ws.recv()
            except ConnectionClosed:
                return
            command = json.loads(text)
            if command.get("type") == "permit":
                self.permits += command["permitMessages"]
                credit += command["permitMessages"]
            else:
                self.commands.put(command)


def ack_if_possible(message: rs.Message[Any]) -> None:
    """Ack, accepting that a message from a socket that just died cannot be acked."""
    with contextlib.suppress(rs.AckError):
        message.ack()


class Collector:
    """An observer that records what it gets and can wait for counts."""

    def __init__(self, settle: Callable[[rs.Message[Any]], None] | None = None) -> None:
        self.items: queue.Queue[rs.Message[Any]] = queue.Queue()
        self.errors: list[Exception] = []
        self.completed = threading.Event()
        self.ended = threading.Event()
        self._settle = settle

    def on_next(self, message: rs.Message[Any]) -> None:
        if self._settle is not None:
            self._settle(message)
        self.items.put(message)

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)
        self.ended.set()

    def on_completed(self) -> None:
        self.completed.set()
        self.ended.set()

    def take(self, count: int) -> list[rs.Message[Any]]:
        return [self.items.get(timeout=WAIT) for _ in range(count)]


def test_a_consumer_decodes_every_field_and_settles_on_its_socket(scripted_peer: Peer) -> None:
    frames = [
        message_frame(
            0,
            b"hello",
            key="k",
            properties={"a": "1"},
            eventTime="2024-01-02T03:04:05Z",
            redeliveryCount=2,
        ),
        message_frame(1),
    ]
    fake = FakeConsumer(frames)
    peer = scripted_peer(fake)
    collector = Collector()
    with rs.Client(peer.url) as client:
        topic = client.topic("orders")
        subscription = topic.observe(
            "sub", subscription_type="Shared", max_in_flight=10, ack_timeout_millis=2000
        ).subscribe(collector)
        first, second = collector.take(2)
        first.ack()
        first.ack()  # idempotent
        second.nack()
        acks = [fake.commands.get(timeout=WAIT) for _ in range(2)]
        subscription.dispose()
        with pytest.raises(rs.AckError):
            rs.Message(topic.name, b"", rs.MessageId("CAAQAw==")).ack()
    assert first.payload == b"hello"
    assert first.key == "k"
    assert dict(first.properties) == {"a": "1"}
    assert first.publish_time == datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert first.event_time == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert first.redelivery_count == 2
    assert first.message_id == rs.MessageId.from_parts(1, 0)
    assert first.topic == topic.name
    assert acks == [
        {"messageId": str(first.message_id)},
        {"type": "negativeAcknowledge", "messageId": str(second.message_id)},
    ]
    path = peer.paths[0]
    assert path.startswith("/ws/v2/consumer/persistent/public/default/orders/sub?")
    for part in ("subscriptionType=Shared", "pullMode=true", "receiverQueueSize=10"):
        assert part in path
    assert "ackTimeoutMillis=2000" in path


def test_a_consumer_never_holds_more_than_max_in_flight(scripted_peer: Peer) -> None:
    fake = FakeConsumer([message_frame(i) for i in range(50)])
    peer = scripted_peer(fake)
    collector = Collector()
    with rs.Client(peer.url) as client:
        subscription = client.topic("t").observe("s", max_in_flight=8).subscribe(collector)
        held = collector.take(8)
        assert fake.permits == 8  # the server was never allowed a ninth
        assert collector.items.empty()
        for message in held[:2]:
            message.ack()
        more = collector.take(2)
        assert fake.permits == 10
        for message in held[2:] + more:
            message.ack()
        for _ in range(40):
            collector.take(1)[0].ack()
        subscription.dispose()
    assert fake.sent == 50


def test_a_malformed_frame_is_reported_skipped_and_its_credit_returned(scripted_peer: Peer) -> None:
    frames = [message_frame(0), "not json", json.dumps({"messageId": 5}), message_frame(1)]
    fake = FakeConsumer(frames)
    peer = scripted_peer(fake)
    collector = Collector(settle=lambda m: m.ack())
    errors: list[rs.StargateError] = []
    with rs.Client(peer.url) as client:
        client.errors.subscribe(errors.append)
        subscription = client.topic("t").observe("s", max_in_flight=2).subscribe(collector)
        messages = collector.take(2)
        subscription.dispose()
    assert [m.message_id.entry_id for m in messages] == [0, 1]
    assert len(errors) == 2 and all(isinstance(e, rs.ProtocolError) for e in errors)
    assert not collector.errors


@pytest.mark.parametrize("cut", [drop, send_empty_close], ids=["drop", "close-1005"])
def test_a_lost_connection_resubscribes_and_old_messages_raise_ack_error(
    scripted_peer: Peer, cut: Callable[[ServerConnection], None]
) -> None:
    fake = FakeConsumer([message_frame(i) for i in range(6)])

    def cut_after_three(ws: ServerConnection, sent: int) -> bool:
        if sent == 3 and fake.connections == 1:
            fake.sent = 0  # a broker redelivers what was not acked (set before the client
            cut(ws)  # can reconnect, or the new socket would start at the old position)
            return False
        return True

    fake.on_connect = cut_after_three
    peer = scripted_peer(fake)
    collector = Collector()
    with rs.Client(peer.url, reconnect=FAST) as client:
        subscription = client.topic("t").observe("s", max_in_flight=10).subscribe(collector)
        # Messages of the dropped socket may reach the observer before the drop is seen, or be
        # skipped (the broker sends them again); either way all six arrive on the new socket.
        seen: list[rs.Message[Any]] = []
        while sorted({m.payload for m in seen[-6:]}) != [str(i).encode() for i in range(6)]:
            seen.append(collector.take(1)[0])
        old, new = seen[:-6], seen[-6:]
        for message in old:
            with pytest.raises(rs.AckError):
                message.ack()
        for message in new:
            message.ack()
        subscription.dispose()
    assert len(peer.paths) == 2
    assert not collector.errors
    assert fake.permits >= 20  # a full window on each socket


def test_a_retry_that_is_refused_for_good_ends_the_stream(scripted_peer: Peer) -> None:
    fake = FakeConsumer([message_frame(0)])
    peer = scripted_peer(fake)

    def cut(ws: ServerConnection, sent: int) -> bool:
        peer.refuse = (403, "Not authorized")
        drop(ws)
        return False

    fake.on_connect = cut
    collector = Collector()
    with rs.Client(peer.url, reconnect=FAST) as client:
        client.topic("t").observe("s").subscribe(collector)
        assert collector.ended.wait(WAIT)
    assert isinstance(collector.errors[0], rs.AuthorizationError)
    assert collector.errors[0].status_code == 403


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, rs.BadRequestError),
        (401, rs.AuthenticationError),
        (404, rs.TopicNotFoundError),
        (409, rs.ConflictError),
        (500, rs.ServerError),
    ],
)
def test_a_refused_subscription_errors_with_the_typed_error(
    scripted_peer: Peer, status: int, error: type[rs.HandshakeError]
) -> None:
    peer = scripted_peer(FakeConsumer([]), refuse=(status, "Failed to subscribe: no"))
    collector = Collector()
    with rs.Client(peer.url) as client:
        client.topic("t").observe("s").subscribe(collector)
        assert collector.ended.wait(WAIT)
    assert type(collector.errors[0]) is error
    assert not collector.completed.is_set()


def test_an_unreachable_host_errors_the_stream() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    collector = Collector()
    with rs.Client(f"ws://127.0.0.1:{port}", connect_timeout=2) as client:
        client.topic("t").observe().subscribe(collector)
        assert collector.ended.wait(WAIT)
    assert isinstance(collector.errors[0], rs.StargateConnectionError)


def test_an_exception_in_the_observer_goes_to_on_error(scripted_peer: Peer) -> None:
    peer = scripted_peer(FakeConsumer([message_frame(0), message_frame(1)]))
    boom = RuntimeError("boom")

    def settle(message: rs.Message[Any]) -> None:
        raise boom

    collector = Collector(settle=settle)
    with rs.Client(peer.url) as client:
        client.topic("t").observe("s").subscribe(collector)
        assert collector.ended.wait(WAIT)
    assert collector.errors == [boom]


def test_a_failure_inside_the_delivery_thread_ends_the_stream_with_an_error(
    scripted_peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug on the delivery thread must end the stream, never leave it silently stuck."""
    from rxstargate._message_factory import MessageFactory

    def broken(*args: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(MessageFactory, "build", broken)
    peer = scripted_peer(FakeConsumer([message_frame(0)]))
    collector = Collector()
    with rs.Client(peer.url) as client:
        client.topic("t").observe("s").subscribe(collector)
        assert collector.ended.wait(WAIT)
        assert client.streams == []
    assert len(collector.errors) == 1
    assert isinstance(collector.errors[0], rs.ProtocolError)
    assert "KeyError" in str(collector.errors[0])


def test_a_normal_server_close_completes_the_stream(scripted_peer: Peer) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send(message_frame(0))
        ws.close(1000)

    peer = scripted_peer(handler)
    collector = Collector()
    with rs.Client(peer.url) as client:
        client.topic("t").observe(start="earliest").subscribe(collector)
        assert collector.completed.wait(WAIT)
    assert collector.items.qsize() == 1
    assert not collector.errors


class Order(Schema):
    id = fields.Integer(required=True)


def test_a_payload_that_fails_the_schema_is_reported_nacked_and_skipped(
    scripted_peer: Peer,
) -> None:
    fake = FakeConsumer([message_frame(0, b'{"id": "x"}'), message_frame(1, b'{"id": 7}')])
    peer = scripted_peer(fake)
    collector = Collector()
    errors: list[rs.StargateError] = []
    with rs.Client(peer.url) as client:
        client.errors.subscribe(errors.append)
        subscription = client.topic("t").observe("s", schema=Order()).subscribe(collector)
        (message,) = collector.take(1)
        nack = fake.commands.get(timeout=WAIT)
        subscription.dispose()
    assert message.value == {"id": 7}
    assert nack == {"type": "negativeAcknowledge", "messageId": str(rs.MessageId.from_parts(1, 0))}
    assert isinstance(errors[0], rs.SchemaError)


def test_a_reader_returns_credit_by_acking_and_resumes_after_the_last_id(
    scripted_peer: Peer,
) -> None:
    fake = FakeConsumer([message_frame(i) for i in range(4)], pull=False)

    def cut(ws: ServerConnection, sent: int) -> bool:
        if sent == 2 and fake.connections == 1:
            drop(ws)
            return False
        return True

    fake.on_connect = cut
    peer = scripted_peer(fake)
    collector = Collector(settle=ack_if_possible)
    with rs.Client(peer.url, reconnect=FAST) as client:
        subscription = (
            client.topic("t").observe(start="earliest", max_in_flight=5).subscribe(collector)
        )
        collector.take(4)
        subscription.dispose()
    assert peer.paths[0] == (
        "/ws/v2/reader/persistent/public/default/t?receiverQueueSize=5&messageId=earliest"
    )
    resume = str(rs.MessageId.from_parts(1, 1)).replace("=", "%3D").replace("+", "%2B")
    assert peer.paths[1].endswith(f"messageId={resume}")


def test_a_missed_pong_counts_as_a_dropped_connection() -> None:
    collector = Collector()
    with (
        SilentPeer() as peer,
        # The silent peer never answers a close either: close_timeout bounds that wait.
        rs.Client(
            peer.url, ping_interval=0.02, ping_timeout=0.05, reconnect=FAST, close_timeout=0.1
        ) as client,
    ):
        subscription = client.topic("t").observe(start="earliest").subscribe(collector)
        for _ in range(2):  # the first socket, then the one opened after the missed pong
            assert peer.connections.acquire(timeout=WAIT)
        subscription.dispose()
    assert not collector.errors


def test_the_acknowledger_acks_everything(scripted_peer: Peer) -> None:
    fake = FakeConsumer([message_frame(i) for i in range(30)])
    peer = scripted_peer(fake)
    with rs.Client(peer.url) as client:
        sink = rs.acknowledger()
        subscription = client.topic("t").observe("s", max_in_flight=4).subscribe(sink)
        acks = [fake.commands.get(timeout=WAIT) for _ in range(30)]
        subscription.dispose()
    assert (sink.acked, sink.failed) == (30, 0)
    assert [a["messageId"] for a in acks] == [str(rs.MessageId.from_parts(1, i)) for i in range(30)]


def test_disposing_closes_the_socket_and_held_messages_raise_ack_error(
    scripted_peer: Peer,
) -> None:
    peer = scripted_peer(FakeConsumer([message_frame(0)]))
    collector = Collector()
    with rs.Client(peer.url) as client:
        subscription = client.topic("t").observe("s").subscribe(collector)
        (message,) = collector.take(1)
        subscription.dispose()
        assert not [t for t in threading.enumerate() if t.name.startswith("rxstargate-consumer")]
        with pytest.raises(rs.AckError):
            message.ack()


def test_an_ack_leaves_even_while_the_callback_is_still_busy(scripted_peer: Peer) -> None:
    fake = FakeConsumer([message_frame(0), message_frame(1)])
    peer = scripted_peer(fake)
    acked_on_the_wire = threading.Event()
    outcome: list[bool] = []

    def slow(message: rs.Message[Any]) -> None:
        message.ack()
        if message.message_id.entry_id == 0:  # stay busy until the peer has seen the ack
            outcome.append(acked_on_the_wire.wait(WAIT))

    collector = Collector(settle=slow)
    with rs.Client(peer.url) as client:
        subscription = client.topic("t").observe("s").subscribe(collector)
        assert fake.commands.get(timeout=WAIT) == {"messageId": str(rs.MessageId.from_parts(1, 0))}
        acked_on_the_wire.set()
        collector.take(2)
        subscription.dispose()
    assert outcome == [True]


def test_an_observer_that_blocks_does_not_hold_up_another_stream_of_the_client(
    scripted_peer: Peer,
) -> None:
    def one_message(ws: ServerConnection) -> None:
        ws.recv()  # the permit
        ws.send(message_frame(0))
        with contextlib.suppress(ConnectionClosed):
            while True:
                ws.recv()

    peer = scripted_peer(one_message)
    first_busy, second_delivered = threading.Event(), threading.Event()
    outcome: list[bool] = []

    def blocking(message: rs.Message[Any]) -> None:
        first_busy.set()
        outcome.append(second_delivered.wait(WAIT))  # until the other stream got its message

    with rs.Client(peer.url) as client:
        # No stall checks: their waits time out each second and would wake a thread anyway.
        first = client.topic("a").observe("s", stall_timeout=None).subscribe(blocking)
        assert first_busy.wait(WAIT)
        second = (
            client.topic("b")
            .observe("s", stall_timeout=None)
            .subscribe(lambda m: second_delivered.set())
        )
        assert second_delivered.wait(WAIT)
        second.dispose()
        first.dispose()
    assert outcome == [True]


class FakeReader:
    """A reader endpoint with Pulsar's window: sends while unacked < receiverQueueSize."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.window = 0
        self.max_outstanding = 0
        self.acked: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request else ""
        self.window = int(path.split("receiverQueueSize=")[1].split("&")[0])
        sent = outstanding = 0
        while True:
            if sent < self.count and outstanding < self.window:
                ws.send(message_frame(sent))
                sent += 1
                outstanding += 1
                self.max_outstanding = max(self.max_outstanding, outstanding)
                continue
            try:
                command = json.loads(ws.recv())
            except ConnectionClosed:
                return
            with self.lock:
                self.acked.add(command.get("messageId", ""))
            outstanding -= 1


def test_a_reader_returns_credit_when_on_next_returns_and_honours_max_in_flight(
    scripted_peer: Peer,
) -> None:
    fake = FakeReader(50)
    peer = scripted_peer(fake)
    acked_before_handled: list[str] = []
    release = threading.Event()
    collector = Collector()

    def slow(message: rs.Message[Any]) -> None:
        with fake.lock:
            if str(message.message_id) in fake.acked:
                acked_before_handled.append(str(message.message_id))
        release.wait(WAIT)

    collector._settle = slow
    with rs.Client(peer.url) as client:
        source = client.topic("t").observe(max_in_flight=5, receiver_queue_size=1000)
        subscription = source.subscribe(collector)
        peer.wait_connections(1)
        threading.Timer(0.3, release.set).start()
        items = [collector.items.get(timeout=WAIT) for _ in range(50)]
        subscription.dispose()
    assert fake.window == 5  # max_in_flight wins over a larger receiver_queue_size
    assert fake.max_outstanding <= 5
    assert [m.payload for m in items] == [str(i).encode() for i in range(50)]
    assert acked_before_handled == []


def test_several_topics_are_one_v3_consumer_and_each_message_names_its_topic(
    scripted_peer: Peer,
) -> None:
    def serve(ws: ServerConnection) -> None:
        ws.recv()  # the first permit
        ws.send(message_frame(1, topic="persistent://public/default/refunds"))
        ws.send(message_frame(2))  # a server that does not say
        for _ in ws:
            pass

    peer = scripted_peer(serve)
    with rs.Client(peer.url) as client:
        topics = client.topics(["orders", "refunds"])
        collector = Collector()
        handle = topics.observe("audit", max_in_flight=10).subscribe(collector)
        first, second = collector.take(2)
        handle.dispose()
        with pytest.raises(rs.ConfigurationError, match="subscription"):
            topics.observe()
        pattern = client.topics(re.compile("orders-.*"))
        assert pattern.pattern == "persistent://public/default/orders-.*"
    path = peer.paths[0]
    assert path.startswith("/ws/v3/consumer/audit?")
    assert "topics=persistent%3A%2F%2Fpublic%2Fdefault%2Forders%2Cpersistent" in path
    assert "pullMode=true" in path
    assert str(first.topic) == "persistent://public/default/refunds"
    assert str(second.topic) == "persistent://public/default/orders"
