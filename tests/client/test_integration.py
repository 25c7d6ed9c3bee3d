"""The client end to end: each test on MemoryPulsar and, as its real-broker twin, against the
session's Pulsar (local Pulsar by default, or RXSTARGATE_WS_URL).

What only a real broker can show (batching, the official client, a gateway with a token, acks
held back on the wire, Key_Shared's assignment) runs against the session's Pulsar alone.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import reactivex as rx
from reactivex import operators as ops
from reactivex.testing import TestScheduler

import rxstargate as rs
from rxstargate.testing import MemoryPulsar
from tests.conftest import Backend

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

WAIT = 10.0
FAST = rs.Backoff(initial=0.01, cap=0.5, give_up_after=10.0)


class Inbox:
    """An observer that queues messages and remembers how the stream ended."""

    def __init__(self, ack: bool = False) -> None:
        self.ack = ack
        self.items: queue.Queue[rs.Message[Any]] = queue.Queue()
        self.errors: list[Exception] = []
        self.ended = threading.Event()

    def on_next(self, message: rs.Message[Any]) -> None:
        if self.ack:
            with contextlib.suppress(rs.AckError):
                message.ack()
        self.items.put(message)

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)
        self.ended.set()

    def on_completed(self) -> None:
        self.ended.set()

    def get(self) -> rs.Message[Any]:
        """The next message; fails at once if the stream ended with an error."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.errors:
                raise AssertionError(f"the stream failed: {self.errors[0]!r}")
            with contextlib.suppress(queue.Empty):
                return self.items.get(timeout=0.05)
        raise AssertionError("no message in time")

    def take(self, count: int) -> list[rs.Message[Any]]:
        return [self.get() for _ in range(count)]

    def take_distinct(self, count: int) -> list[rs.Message[Any]]:
        """Messages in arrival order, skipping repeats (local Pulsar may deliver some twice)."""
        seen: set[rs.MessageId] = set()
        out: list[rs.Message[Any]] = []
        while len(out) < count:
            message = self.get()
            if message.message_id not in seen:
                seen.add(message.message_id)
                out.append(message)
        return out


@pytest.fixture
def client(backend: Backend) -> Iterator[rs.Client]:
    with backend.client(reconnect=FAST) as c:
        yield c


@pytest.fixture
def broker_client(pulsar: Any) -> Iterator[rs.Client]:
    """A client of the session's Pulsar, for what only a real broker does."""
    with rs.Client(pulsar.ws_url, reconnect=FAST) as c:
        yield c


def _subscribe_ready(topic: rs.Topic, inbox: Inbox, *args: Any, **kwargs: Any) -> Any:
    """Subscribe with the earliest position so messages sent right after are never missed."""
    kwargs.setdefault("subscription_initial_position", "Earliest")
    return topic.observe(*args, **kwargs).subscribe(inbox)


def test_every_message_field_round_trips(client: rs.Client, topic_name: str) -> None:
    topic = client.topic(topic_name)
    inbox = Inbox(ack=True)
    subscription = _subscribe_ready(topic, inbox, "sub")
    when = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    payload = bytes(range(256))
    ack = topic.producer().send(
        payload, key="the-key", properties={"p": "v", "ü": "ß"}, event_time=when
    )
    (message,) = inbox.take(1)
    subscription.dispose()
    assert message.payload == payload
    assert message.key == "the-key"
    assert dict(message.properties) == {"p": "v", "ü": "ß"}
    assert message.event_time == when
    assert message.publish_time is not None and message.publish_time.tzinfo is not None
    assert abs((datetime.now(UTC) - message.publish_time).total_seconds()) < 600
    assert message.message_id == ack.message_id
    assert message.redelivery_count == 0
    assert message.topic == topic.name


def test_one_producer_one_exclusive_consumer_keeps_order(
    client: rs.Client, topic_name: str
) -> None:
    topic = client.topic(topic_name)
    inbox = Inbox(ack=True)
    subscription = _subscribe_ready(topic, inbox, "sub", max_in_flight=100)
    producer = topic.producer(max_in_flight=100)
    done = threading.Event()
    producer.acks.subscribe(on_completed=done.set)
    rx.from_iterable(range(500)).pipe(ops.map(lambda i: str(i).encode())).subscribe(producer)
    assert done.wait(WAIT)
    messages = inbox.take_distinct(500)
    subscription.dispose()
    assert [int(m.payload) for m in messages] == list(range(500))


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["Shared", "Key_Shared"])
def test_two_consumers_share_a_subscription(
    broker_client: rs.Client, topic_name: str, kind: str
) -> None:
    topic = broker_client.topic(topic_name)
    inboxes = [Inbox(ack=True), Inbox(ack=True)]
    subscriptions = [
        _subscribe_ready(topic, inbox, "shared", subscription_type=kind, max_in_flight=10)
        for inbox in inboxes
    ]
    producer = topic.producer()
    for i in range(200):
        producer.on_next(rs.OutgoingMessage(str(i).encode(), key=f"k{i % 10}"))
    producer.on_completed()
    got: list[list[rs.Message[Any]]] = [[], []]
    seen: set[bytes] = set()
    deadline = time.monotonic() + WAIT
    while len(seen) < 200:
        assert time.monotonic() < deadline, f"{len(seen)} of 200 messages came"
        idle = True
        for index, inbox in enumerate(inboxes):
            with contextlib.suppress(queue.Empty):
                message = inbox.items.get_nowait()
                got[index].append(message)
                seen.add(message.payload)
                idle = False
        if idle:
            time.sleep(0.005)  # poll again: one consumer may get every message of a while
    for subscription in subscriptions:
        subscription.dispose()
    assert all(got), "both consumers received messages"
    if kind == "Key_Shared":
        keys = [{m.key for m in messages} for messages in got]
        assert not keys[0] & keys[1], "each key goes to one consumer"


def test_a_nacked_message_is_redelivered_with_its_count(client: rs.Client, topic_name: str) -> None:
    topic = client.topic(topic_name)
    inbox = Inbox()
    subscription = _subscribe_ready(
        topic, inbox, "sub", subscription_type="Shared", negative_ack_redelivery_delay=10
    )
    topic.producer().send(b"again")
    first = inbox.take(1)[0]
    first.nack()
    second = inbox.take(1)[0]
    second.ack()
    subscription.dispose()
    assert second.payload == b"again"
    assert second.message_id == first.message_id
    assert second.redelivery_count == first.redelivery_count + 1


def test_an_unacked_message_is_redelivered_after_the_ack_timeout(topic_name: str) -> None:
    """On virtual time (the gateway's ack timeout is tested in tests/local)."""
    memory = MemoryPulsar(scheduler=TestScheduler())
    with memory, memory.client(reconnect=FAST) as client:
        topic = client.topic(topic_name)
        inbox = Inbox()
        subscription = _subscribe_ready(
            topic, inbox, "sub", subscription_type="Shared", ack_timeout_millis=1000
        )
        topic.producer().send(b"late")
        memory.wait_until(lambda: inbox.items.qsize() >= 2)
        first, second = inbox.take(2)
        second.ack()
        subscription.dispose()
    assert first.message_id == second.message_id
    assert second.redelivery_count >= 1


def test_a_message_nacked_too_often_goes_to_the_dead_letter_topic(
    client: rs.Client, topic_name: str
) -> None:
    topic = client.topic(topic_name)
    dlq = client.topic(topic_name + "-dlq")
    dead = Inbox(ack=True)
    dlq_subscription = _subscribe_ready(dlq, dead, "dlq-sub")
    inbox = Inbox()
    subscription = _subscribe_ready(
        topic,
        inbox,
        "sub",
        subscription_type="Shared",
        negative_ack_redelivery_delay=10,
        max_redeliver_count=1,
        dead_letter_topic=str(dlq.name),
    )
    topic.producer().send(b"poison")
    for _ in range(2):
        inbox.get().nack()
    (buried,) = dead.take(1)
    subscription.dispose()
    dlq_subscription.dispose()
    assert buried.payload == b"poison"


def test_readers_start_at_earliest_latest_or_a_message_id(
    client: rs.Client, topic_name: str
) -> None:
    topic = client.topic(topic_name)
    producer = topic.producer()
    ids = [producer.send(str(i).encode()).message_id for i in range(5)]
    assert all(ids)
    earliest, from_id, latest = Inbox(ack=True), Inbox(ack=True), Inbox(ack=True)
    subscriptions = [
        topic.observe(start="earliest").subscribe(earliest),
        topic.observe(start=ids[1]).subscribe(from_id),  # type: ignore[arg-type]
        topic.observe(start="latest").subscribe(latest),
    ]
    assert [m.payload for m in earliest.take_distinct(5)] == [b"0", b"1", b"2", b"3", b"4"]
    assert [m.payload for m in from_id.take_distinct(3)] == [b"2", b"3", b"4"]
    # latest: only what is sent after the reader is open; keep sending until one arrives
    deadline = time.monotonic() + WAIT
    while latest.items.empty() and time.monotonic() < deadline:
        producer.send(b"new")
        time.sleep(0.01)
    assert latest.take(1)[0].payload == b"new"
    for subscription in subscriptions:
        subscription.dispose()


def test_a_consumer_holds_exactly_max_in_flight_unsettled(
    client: rs.Client, topic_name: str
) -> None:
    topic = client.topic(topic_name)
    producer = topic.producer()
    for i in range(30):
        producer.on_next(str(i).encode())
    producer.flush()
    inbox = Inbox()
    subscription = _subscribe_ready(
        topic, inbox, "sub", subscription_type="Shared", max_in_flight=5
    )
    # The bound itself is checked against a counting peer in the component tests; here the
    # real broker must keep delivering as credit comes back, one settle at a time.
    held = inbox.take(5)
    held[0].ack()
    sixth = inbox.take(1)
    for message in held[1:] + sixth:
        message.ack()
    rest = []
    while len(rest) < 24:
        message = inbox.items.get(timeout=WAIT)
        message.ack()
        rest.append(message)
    subscription.dispose()


@pytest.mark.integration
def test_interop_with_the_official_client_both_ways(
    broker_client: rs.Client, topic_name: str, pulsar: Any
) -> None:
    client = broker_client
    pulsar_client = pytest.importorskip("pulsar")
    if pulsar.broker_url is None:
        pytest.skip(
            "RXSTARGATE_WS_URL is set without RXSTARGATE_BROKER_URL: the official client"
            " needs the broker URL"
        )
    official = pulsar_client.Client(pulsar.broker_url)
    try:
        topic = client.topic(topic_name)
        consumer = official.subscribe(
            topic_name, "official", initial_position=pulsar_client.InitialPosition.Earliest
        )
        topic.producer().send(b"\x00from rx", key="k", properties={"a": "b"})
        received = consumer.receive(timeout_millis=int(WAIT * 1000))
        consumer.acknowledge(received)
        assert (received.data(), received.partition_key(), received.properties()) == (
            b"\x00from rx",
            "k",
            {"a": "b"},
        )
        inbox = Inbox(ack=True)
        subscription = _subscribe_ready(topic, inbox, "rx")
        official_producer = official.create_producer(topic_name)
        official_producer.send(b"\xfffrom official", properties={"x": "y"}, partition_key="pk")
        messages = inbox.take_distinct(2)
        subscription.dispose()
        assert (messages[1].payload, messages[1].key, dict(messages[1].properties)) == (
            b"\xfffrom official",
            "pk",
            {"x": "y"},
        )
    finally:
        official.close()


class CuttingProxy:
    """A loopback TCP proxy that can cut every connection through it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self.flowing = threading.Event()  # cleared: bytes from the server are held back
        self.flowing.set()
        self._thread = threading.Thread(target=self._accept, name="proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                downstream, _ = self._listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._pairs.append((downstream, upstream))
            for a, b, gate in ((downstream, upstream, None), (upstream, downstream, self.flowing)):
                threading.Thread(
                    target=self._pump, args=(a, b, gate), name="proxy-pump", daemon=True
                ).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, gate: threading.Event | None) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if gate is not None:
                    gate.wait()
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        source.close()  # each pump closes the socket it read from

    def cut(self) -> int:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        return len(pairs)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.cut()
        self._listener.close()


@contextlib.contextmanager
def cutting_client(backend: Backend) -> Iterator[tuple[rs.Client, Callable[[], int]]]:
    """A client whose connections can be cut: through a CuttingProxy to the session's Pulsar,
    or by MemoryPulsar's cut(); yields the client and the cut (how many were cut)."""
    if backend.memory is not None:
        with backend.client(reconnect=FAST) as client:
            yield client, backend.memory.cut
        return
    assert backend.endpoint is not None
    host, port = backend.endpoint.ws_url.removeprefix("ws://").rsplit(":", 1)
    proxy = CuttingProxy((host, int(port)))
    try:
        with rs.Client(proxy.url, reconnect=FAST) as client:
            yield client, proxy.cut
    finally:
        proxy.close()


def test_cut_connections_lose_no_message(backend: Backend, topic_name: str) -> None:
    total = 1000
    with cutting_client(backend) as (client, cut):
        topic = client.topic(topic_name)
        inbox = Inbox(ack=True)
        subscription = _subscribe_ready(
            topic, inbox, "sub", subscription_type="Shared", max_in_flight=50
        )
        producer = topic.producer(max_in_flight=50)
        acks: list[rs.ProducerAck] = []
        done = threading.Event()
        producer.acks.subscribe(acks.append, on_completed=done.set)
        seen: set[bytes] = set()
        for i in range(total):
            producer.on_next(str(i).encode())
            if i in (200, 600):
                assert cut() >= 1
            while not inbox.items.empty():
                seen.add(inbox.items.get().payload)
        producer.on_completed()
        assert done.wait(WAIT)
        while len(seen) < total:
            seen.add(inbox.items.get(timeout=WAIT).payload)
        subscription.dispose()
    assert {int(a.context) for a in acks if a.ok} == set(range(1, total + 1))
    assert seen == {str(i).encode() for i in range(total)}


@pytest.mark.integration
def test_typed_errors_from_a_real_server(pulsar: Any, topic_name: str) -> None:
    from rxstargate.local import LocalPulsar

    with LocalPulsar(token="right") as secured:
        with (
            rs.Client(secured.ws_url, token="wrong") as client,
            pytest.raises(rs.AuthenticationError) as caught,
        ):
            client.topic(topic_name).producer().send(b"x")
        assert caught.value.status_code == 401
        with rs.Client(secured.ws_url, token="right") as client:
            assert client.topic(topic_name).producer().send(b"x").ok
    with rs.Client(pulsar.ws_url) as client:
        topic = client.topic(topic_name)
        with pytest.raises(rs.InvalidOptionError):
            topic.producer(batching_enabled="yes")
        with pytest.raises(rs.InvalidTopicNameError):
            client.topic("persistent://only/two")
        inbox = Inbox()
        subscription = _subscribe_ready(topic, inbox, "sub")
        producer = topic.producer()
        producer.send(b"x")
        (message,) = inbox.take(1)
        subscription.dispose()
        with pytest.raises(rs.AckError):
            message.ack()
    with pytest.raises(rs.ClosedError):
        producer.send(b"y")


def test_close_leaves_no_thread_behind(backend: Backend, topic_name: str) -> None:
    client = backend.client()
    topic = client.topic(topic_name)
    topic.observe("a").subscribe(Inbox())
    topic.observe(start="earliest").subscribe(Inbox())
    topic.producer().send(b"x")
    client.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("rxstargate")]


@pytest.mark.integration
def test_a_producer_blocks_at_max_in_flight_until_acks_come(pulsar: Any, topic_name: str) -> None:
    host, port = pulsar.ws_url.removeprefix("ws://").rsplit(":", 1)
    proxy = CuttingProxy((host, int(port)))
    try:
        with rs.Client(proxy.url) as client:
            producer = client.topic(topic_name).producer(max_in_flight=5, timeout=0.5)
            failed: list[rs.ProducerAck] = []
            producer.acks.pipe(ops.filter(lambda ack: not ack.ok)).subscribe(failed.append)
            producer.send(b"connect")
            proxy.flowing.clear()  # the broker's acks stop reaching the client
            for i in range(5):
                producer.on_next(str(i).encode())
            producer.on_next(b"one too many")  # an Observer never raises into its upstream
            with pytest.raises(rs.StargateTimeoutError):
                producer.send(b"and a blocking one")
            assert [ack.result for ack in failed] == [rs.ClientResult.TIMEOUT]
            proxy.flowing.set()
            producer.flush(timeout=WAIT)
            assert producer.send(b"after").ok
            producer.close()
    finally:
        proxy.flowing.set()
        proxy.close()


@pytest.mark.integration
def test_producer_options_reach_the_broker(broker_client: rs.Client, topic_name: str) -> None:
    topic = broker_client.topic(topic_name)
    inbox = Inbox(ack=True)
    subscription = _subscribe_ready(topic, inbox, "sub", subscription_type="Shared")
    producer = topic.producer(
        batching_enabled=True,
        batching_max_messages=50,
        batching_max_publish_delay=5,
        compression_type="LZ4",
        producer_name=f"p-{topic.name.topic}",
        send_timeout_millis=10_000,
    )
    acks: list[rs.ProducerAck] = []
    done = threading.Event()
    producer.acks.subscribe(acks.append, on_completed=done.set)
    rx.from_iterable(f"m{i}".encode() for i in range(200)).subscribe(producer)
    assert done.wait(WAIT)
    received = {m.payload for m in inbox.take_distinct(200)}
    subscription.dispose()
    assert all(a.ok for a in acks) and len(acks) == 200
    assert received == {f"m{i}".encode() for i in range(200)}
    assert any(a.message_id is not None and a.message_id.batch_index >= 0 for a in acks)


def test_a_reader_reads_past_its_window_without_acks(client: rs.Client, topic_name: str) -> None:
    topic = client.topic(topic_name)
    producer = topic.producer()
    rx.from_iterable([str(i).encode() for i in range(2500)]).subscribe(producer)
    inbox = Inbox()  # never acks: a reader's credit comes back when on_next returns
    subscription = topic.observe(start="earliest", max_in_flight=100).subscribe(inbox)
    payloads = [m.payload for m in inbox.take_distinct(2500)]
    subscription.dispose()
    assert payloads == [str(i).encode() for i in range(2500)]


def test_a_reader_resumes_after_a_cut_without_gaps(backend: Backend, topic_name: str) -> None:
    with backend.client() as direct:
        producer = direct.topic(topic_name).producer()
        rx.from_iterable(str(i).encode() for i in range(300)).subscribe(producer)
    with cutting_client(backend) as (client, cut):
        inbox = Inbox(ack=True)
        subscription = (
            client.topic(topic_name).observe(start="earliest", max_in_flight=20).subscribe(inbox)
        )
        first = inbox.take_distinct(100)
        assert cut() >= 1
        rest = inbox.take_distinct(200)
        subscription.dispose()
    assert [int(m.payload) for m in first + rest] == list(range(300))


def test_a_non_persistent_topic_round_trips(client: rs.Client, topic_name: str) -> None:
    topic = client.topic(topic_name.replace("persistent://", "non-persistent://"))
    inbox = Inbox(ack=True)
    subscription = topic.observe("sub", subscription_type=rs.SubscriptionType.FAILOVER).subscribe(
        inbox
    )
    producer = topic.producer()
    deadline = time.monotonic() + WAIT
    while inbox.items.empty() and time.monotonic() < deadline:  # nothing is kept: resend
        producer.send(b"fleeting")
        time.sleep(0.01)
    assert inbox.take(1)[0].topic.persistence is rs.Persistence.NON_PERSISTENT
    subscription.dispose()
