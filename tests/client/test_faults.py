"""The client through connections that are reset, refused and stalled.

Cuts and refusals run on MemoryPulsar (its ``cut()``, and a connector that refuses while told
to); the real-broker twins go through a proxy that resets connections with TCP RSTs, to local
Pulsar, where a consumer's reconnect may also meet its own old socket still held (409). What
needs a real socket (a stalled server, missed pongs, the admin API behind a stall, batches)
runs against local Pulsar only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pulsar as official
import pytest
import reactivex as rx
from reactivex import operators as ops

import rxstargate as rs
from rxstargate.testing import MemoryPulsar
from tests.conftest import Backend
from tests.faults import FaultProxy, Faults

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

FAST = rs.Backoff(initial=0.01, cap=0.3, give_up_after=30.0)
WAIT = 15.0
KINDS = ["Exclusive", "Failover", "Shared", "Key_Shared", "reader"]


class Payloads:
    """An on_next that keeps payloads; ``done`` is set at ``until`` (or the first, if None)."""

    def __init__(self, until: bytes | None = None) -> None:
        self.payloads: list[bytes] = []
        self.done = threading.Event()
        self._until = until

    def __call__(self, message: rs.Message[Any]) -> None:
        self.payloads.append(message.payload)
        if self._until is None or message.payload == self._until:
            self.done.set()


@pytest.fixture
def proxy(pulsar: Any) -> Iterator[FaultProxy]:
    port = int(pulsar.ws_url.rsplit(":", 1)[1])
    with FaultProxy(port) as fault_proxy:
        yield fault_proxy


def _fill(broker_url: str, topic: str, count: int, subscription: str | None, kind: str) -> None:
    """Store ``count`` keyed messages with the official client (blocking when its queue fills)."""
    client = official.Client(
        broker_url, logger=official.FileLogger(official.LoggerLevel.Error, "/dev/null")
    )
    try:
        if subscription is not None:  # create the subscription first: it starts at the backlog
            kind_enum = getattr(official.ConsumerType, kind.replace("_", ""))
            extra: dict[str, Any] = {}
            if kind == "Key_Shared":
                # As the gateway subscribes: pulsar-lite fixes this setting when the first
                # consumer joins, and without it stalls Key_Shared redeliveries (README).
                extra["key_shared_policy"] = official.ConsumerKeySharedPolicy(
                    allow_out_of_order_delivery=True
                )
            client.subscribe(topic, subscription, consumer_type=kind_enum, **extra).close()
        producer = client.create_producer(topic, batching_enabled=False, block_if_queue_full=True)
        for i in range(count):
            producer.send_async(str(i).encode(), None, partition_key=f"k{i % 7}")
        producer.flush()
    finally:
        client.close()


def _fill_backlog(
    backend: Backend, topic: str, count: int, subscription: str | None, kind: str
) -> None:
    """Store ``count`` keyed messages (after creating the subscription, if any)."""
    if backend.memory is None:
        assert backend.endpoint is not None
        if backend.endpoint.broker_url is None:
            pytest.skip(
                "RXSTARGATE_WS_URL is set without RXSTARGATE_BROKER_URL: the official client"
                " that fills the topic needs the broker URL"
            )
        _fill(backend.endpoint.broker_url, topic, count, subscription, kind)
        return
    if subscription is not None:
        backend.memory.create_subscription(topic, subscription, start="earliest")
    for i in range(count):
        backend.memory.publish(topic, str(i).encode(), key=f"k{i % 7}")


@pytest.mark.parametrize(
    ("backend", "kind"),
    [("memory", kind) for kind in KINDS]
    + [
        pytest.param("local", kind, marks=pytest.mark.integration)
        for kind in ("Exclusive", "Key_Shared")  # a reconnect may meet its old socket (409)
    ],
    indirect=["backend"],
)
def test_a_backlog_is_consumed_completely_through_repeated_resets(
    backend: Backend, faults: Faults, topic_name: str, kind: str
) -> None:
    count, cuts = 1500, 3
    subscription = None if kind == "reader" else "sub"
    _fill_backlog(backend, topic_name, count, subscription, kind)
    seen: set[bytes] = set()
    cut: list[int] = []
    progress = threading.Condition()

    def handle(message: rs.Message[Any]) -> rs.Message[Any]:
        with progress:
            seen.add(message.payload)
            if len(seen) == (len(cut) + 1) * 300 and len(cut) < cuts:
                cut.append(faults.reset())  # mid-stream: up to 200 more are in flight
            progress.notify_all()
        return message

    with faults.client(reconnect=FAST) as client:
        topic = client.topic(topic_name)
        if subscription is None:
            source = topic.observe(start="earliest", max_in_flight=200)
        else:
            source = topic.observe(subscription, subscription_type=kind, max_in_flight=200)
        sink = rs.acknowledger()
        subscription_handle = source.pipe(ops.map(handle)).subscribe(sink)
        with progress:
            progress.wait_for(lambda: len(seen) == count, WAIT)
        subscription_handle.dispose()
    assert len(seen) == count  # every message at least once, none missing
    assert len(cut) == cuts and all(n >= 1 for n in cut)
    if subscription is not None:  # every message was acked on a live socket at least once
        assert backend.backlog(topic_name, subscription, kind) == 0


def test_a_producer_through_resets_acks_or_fails_every_message_and_stores_the_acked(
    backend: Backend, faults: Faults, topic_name: str
) -> None:
    count = 2000
    acks: list[rs.ProducerAck] = []
    with faults.client(reconnect=FAST) as client:
        producer = client.topic(topic_name).producer(max_in_flight=100)
        producer.acks.subscribe(acks.append)

        def cut_now_and_then(index: int) -> None:
            if index in (400, 900, 1500):
                faults.reset()

        rx.from_iterable(range(count)).pipe(
            ops.do_action(cut_now_and_then), ops.map(lambda i: str(i).encode())
        ).subscribe(producer)
    assert len({a.context for a in acks}) == count
    stored = {a.message_id for a in acks if a.ok}
    assert len(stored) >= count - 100  # at most what was in flight at a cut may fail
    assert stored <= _stored_ids(backend, topic_name)


def _stored_ids(backend: Backend, topic: str) -> set[rs.MessageId]:
    """The ids of every message the topic holds."""
    if backend.memory is not None:
        return {m.message_id for m in backend.memory.stored(topic)}
    with backend.client() as reader_client:
        target = reader_client.topic(topic)
        target.producer().send(b"sentinel")  # a re-send after a cut may store a message twice
        read: set[rs.MessageId] = (
            target.observe(start="earliest")
            .pipe(
                ops.take_while(lambda m: m.payload != b"sentinel"),
                ops.map(lambda m: m.message_id),
                ops.to_set(),
            )
            .run()
        )
    return read


@pytest.mark.integration
def test_close_returns_when_the_server_stops_reading(proxy: FaultProxy, topic_name: str) -> None:
    client = rs.Client(proxy.ws_url, write_timeout=1.0, close_timeout=1.0)
    producer = client.topic(topic_name).producer(max_in_flight=50_000)
    producer.send(b"connected")
    proxy.stall()
    big = b"x" * 500_000
    for _ in range(40):  # 20 MB: far more than socket buffers hold
        producer.on_next(big)
    closer = threading.Thread(target=client.close, name="test-closer")
    closer.start()
    closer.join(15.0)
    proxy.resume()
    assert not closer.is_alive(), "client.close() hung on a stalled server"


@pytest.mark.integration
def test_a_stalled_server_is_dropped_and_the_stream_recovers(
    proxy: FaultProxy, topic_name: str
) -> None:
    received: list[bytes] = []
    arrived = threading.Event()
    with rs.Client(proxy.ws_url, ping_interval=0.2, ping_timeout=0.5, reconnect=FAST) as client:
        topic = client.topic(topic_name)
        stream = topic.observe("sub", subscription_initial_position="Earliest")
        handle = stream.subscribe(lambda m: (received.append(m.payload), m.ack(), arrived.set()))
        producer = topic.producer()
        producer.send(b"before")
        assert arrived.wait(WAIT)
        arrived.clear()
        connections = proxy.accepted
        proxy.stall()  # no pong comes back: the client drops the socket and reconnects
        deadline = time.monotonic() + WAIT
        while proxy.accepted == connections and time.monotonic() < deadline:
            time.sleep(0.05)
        proxy.resume()
        producer.send(b"after")
        assert arrived.wait(WAIT)
        handle.dispose()
    assert received[0] == b"before" and received[-1] == b"after"
    assert proxy.accepted >= 3  # producer, first consumer socket, the reconnected one


# About 2.4 s: four messages whose handler takes 0.6 s each, longer than a ping interval and its
# timeout together (0.5 s) on purpose. The producer is closed first: only the consumer's socket is
# counted, and only it must answer pings while the handler runs (a timeout of 0.4 s: a gateway
# busy with a parallel run's other tests has answered a ping in more than 0.2 s).
@pytest.mark.integration
def test_a_handler_slower_than_the_ping_timeout_keeps_its_socket(
    proxy: FaultProxy, topic_name: str
) -> None:
    with rs.Client(proxy.ws_url, ping_interval=0.1, ping_timeout=0.4) as client:
        topic = client.topic(topic_name)
        producer = topic.producer()
        for i in range(4):
            producer.send(str(i).encode())
        producer.close()
        sink = rs.acknowledger()
        done = threading.Event()
        got: list[rs.Message[Any]] = []

        def slow(message: rs.Message[Any]) -> rs.Message[Any]:
            time.sleep(0.6)  # longer than ping_interval + ping_timeout: pongs must still be read
            got.append(message)
            if len(got) == 4:
                done.set()
            return message

        connections = proxy.accepted
        stream = topic.observe("sub", subscription_initial_position="Earliest")
        handle = stream.pipe(ops.map(slow)).subscribe(sink)
        assert done.wait(WAIT)
        # The last message reaches the sink after `slow` returns: dispose only once it has.
        deadline = time.monotonic() + WAIT
        while sink.acked + sink.failed < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        handle.dispose()
    assert [m.payload for m in got] == [b"0", b"1", b"2", b"3"]
    assert all(m.redelivery_count == 0 for m in got)
    assert proxy.accepted == connections + 1  # never reconnected
    assert (sink.acked, sink.failed) == (4, 0)


@pytest.mark.parametrize("start", [None, "latest"])
def test_a_reader_from_latest_keeps_its_place_through_a_drop_before_its_first_message(
    backend: Backend,
    faults: Faults,
    topic_name: str,
    start: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It must not reopen at "latest" again, skipping what was published while it was away."""
    received = Payloads(until=b"after")
    pinned = _when_asked_for_the_last_message_id(backend.memory, monkeypatch)
    with backend.client() as direct, faults.client(reconnect=FAST) as client:
        producer = direct.topic(topic_name).producer()
        producer.send(b"old")
        connections = faults.accepted

        handle = client.topic(topic_name).observe(start=start).subscribe(received)
        assert pinned.wait(WAIT)  # the reader is open at the end of the topic, and knows where
        faults.refuse()
        assert faults.reset() >= 1
        for i in range(3):
            producer.send(f"during-{i}".encode())
        faults.refuse(False)
        deadline = time.monotonic() + WAIT
        while faults.accepted < connections + 2 and time.monotonic() < deadline:
            time.sleep(0.005)  # reconnected
        producer.send(b"after")
        assert received.done.wait(WAIT)
        handle.dispose()
    assert received.payloads == [b"during-0", b"during-1", b"during-2", b"after"]


def _when_asked_for_the_last_message_id(
    memory: MemoryPulsar | None, monkeypatch: pytest.MonkeyPatch, before: Any = None
) -> threading.Event:
    """An event set once the admin API (MemoryPulsar's, else the real one) answered
    lastMessageId: a reader from "latest" then knows where it began (``before()`` runs first)."""
    from rxstargate import _admin

    answered = threading.Event()
    owner: Any = memory.connect if memory is not None else _admin
    asked = owner.last_message_id

    def last_message_id(*args: Any, **kwargs: Any) -> Any:
        if before is not None:
            before()
        try:
            return asked(*args, **kwargs)
        finally:
            answered.set()

    monkeypatch.setattr(owner, "last_message_id", last_message_id)
    return answered


# About 1 s: a handshake held back 0.5 s (longer than idle), then one that times out after 0.6 s.
@pytest.mark.integration
def test_peek_counts_silence_from_the_open_and_raises_when_it_cannot_open(
    pulsar: Any, proxy: FaultProxy, topic_name: str
) -> None:
    with rs.Client(pulsar.ws_url) as direct:
        direct.topic(topic_name).producer().send(b"stored")
    with rs.Client(proxy.ws_url, connect_timeout=1.0, close_timeout=1.0, reconnect=FAST) as client:
        proxy.stall()  # the handshake waits longer than idle
        resume = threading.Timer(0.5, proxy.resume)
        resume.start()
        try:
            assert [m.payload for m in client.topic(topic_name).peek(5, idle=0.3)] == [b"stored"]
        finally:
            resume.join()
    # A connect timeout longer than idle, shorter than the peek's own timeout.
    with rs.Client(proxy.ws_url, connect_timeout=0.6, close_timeout=1.0, reconnect=FAST) as client:
        proxy.stall()
        with pytest.raises(rs.StargateError):  # not an empty result
            client.topic(topic_name).peek(5, idle=0.3, timeout=1.5)
        proxy.resume()


@pytest.mark.integration
@pytest.mark.parametrize("drop", [False, True])
def test_a_reader_from_latest_never_shows_a_batch_stored_before_it_began(
    pulsar: Any, proxy: FaultProxy, topic_name: str, drop: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    received = Payloads(until=b"after")
    with (
        rs.Client(pulsar.ws_url) as direct,
        rs.Client(proxy.ws_url, reconnect=FAST) as client,
    ):
        batched = direct.topic(topic_name).producer(
            batching_enabled=True, batching_max_publish_delay=50
        )
        for i in range(10):
            batched.on_next(f"old-{i}".encode())
        batched.flush()
        old = direct.topic(topic_name).observe(start="earliest").pipe(ops.take(10), ops.to_list())
        assert any(m.message_id.batch_index >= 0 for m in old.run())  # the last entry is a batch

        connections = proxy.accepted
        pinned = _when_asked_for_the_last_message_id(None, monkeypatch)
        handle = client.topic(topic_name).observe().subscribe(received)
        assert pinned.wait(WAIT)  # the reader is open and knows where it began
        deadline = time.monotonic() + WAIT
        if drop:
            proxy.reset()
            while proxy.accepted < connections + 3 and time.monotonic() < deadline:
                time.sleep(0.02)  # reopened where it began
        producer = direct.topic(topic_name).producer()
        producer.send(b"after")
        assert received.done.wait(WAIT)
        handle.dispose()
    assert received.payloads == [b"after"]


def test_a_message_published_while_a_reader_learns_its_start_is_delivered(
    backend: Backend, topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pin may name a message the first socket is about to deliver: it must not be skipped."""
    received = Payloads()
    with backend.client() as client:
        producer = client.topic(topic_name).producer()
        producer.send(b"old")

        def racing() -> None:
            producer.send(b"racing")  # after the reader opened, before the answer

        _when_asked_for_the_last_message_id(backend.memory, monkeypatch, before=racing)
        handle = client.topic(topic_name).observe().subscribe(received)
        assert received.done.wait(WAIT)
        handle.dispose()
    assert received.payloads == [b"racing"]
