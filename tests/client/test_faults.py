"""The client against local Pulsar through a proxy that resets and stalls connections."""

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
from tests.faults import FaultProxy, unacked_messages

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_leaked_threads")]

FAST = rs.Backoff(initial=0.05, cap=0.3, give_up_after=30.0)
WAIT = 60.0


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


@pytest.mark.parametrize("kind", ["Exclusive", "Failover", "Shared", "Key_Shared", "reader"])
def test_a_backlog_is_consumed_completely_through_repeated_resets(
    pulsar: Any, proxy: FaultProxy, topic_name: str, kind: str
) -> None:
    if pulsar.broker_url is None:
        pytest.skip(
            "RXSTARGATE_WS_URL is set without RXSTARGATE_BROKER_URL: the official client"
            " that fills the topic needs the broker URL"
        )
    count, cuts = 1500, 3
    subscription = None if kind == "reader" else "sub"
    _fill(pulsar.broker_url, topic_name, count, subscription, kind)
    seen: set[bytes] = set()
    progress = threading.Condition()

    def handle(message: rs.Message[Any]) -> rs.Message[Any]:
        time.sleep(0.0005)
        with progress:
            seen.add(message.payload)
            progress.notify_all()
        return message

    with rs.Client(proxy.ws_url, reconnect=FAST) as client:
        topic = client.topic(topic_name)
        if subscription is None:
            source = topic.observe(start="earliest", max_in_flight=200)
        else:
            source = topic.observe(subscription, subscription_type=kind, max_in_flight=200)
        sink = rs.acknowledger()
        subscription_handle = source.pipe(ops.map(handle)).subscribe(sink)
        for cut in range(1, cuts + 1):
            with progress:
                assert progress.wait_for(lambda c=cut: len(seen) >= c * 300, WAIT)
            assert proxy.reset() >= 1
        with progress:
            progress.wait_for(lambda: len(seen) == count, WAIT)
        subscription_handle.dispose()
    assert len(seen) == count  # every message at least once, none missing
    assert proxy.resets >= cuts
    if subscription is not None:  # every message was acked on a live socket at least once
        assert unacked_messages(pulsar.ws_url, topic_name, subscription, kind) == []


def test_a_producer_through_resets_acks_or_fails_every_message_and_stores_the_acked(
    pulsar: Any, proxy: FaultProxy, topic_name: str
) -> None:
    count = 2000
    acks: list[rs.ProducerAck] = []
    with rs.Client(proxy.ws_url, reconnect=FAST) as client:
        producer = client.topic(topic_name).producer(max_in_flight=100)
        producer.acks.subscribe(acks.append)

        def cut_now_and_then(index: int) -> None:
            if index in (400, 900, 1500):
                proxy.reset()

        rx.from_iterable(range(count)).pipe(
            ops.do_action(cut_now_and_then), ops.map(lambda i: str(i).encode())
        ).subscribe(producer)
    assert len({a.context for a in acks}) == count
    stored = {a.message_id for a in acks if a.ok}
    assert len(stored) >= count - 100  # at most what was in flight at a cut may fail
    with rs.Client(pulsar.ws_url) as reader_client:
        topic = reader_client.topic(topic_name)
        topic.producer().send(b"sentinel")  # a re-send after a cut may store a message twice
        read = (
            topic.observe(start="earliest")
            .pipe(
                ops.take_while(lambda m: m.payload != b"sentinel"),
                ops.map(lambda m: m.message_id),
                ops.to_set(),
            )
            .run()
        )
    assert stored <= read


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


def test_a_handler_slower_than_the_ping_timeout_keeps_its_socket(
    proxy: FaultProxy, topic_name: str
) -> None:
    with rs.Client(proxy.ws_url, ping_interval=0.1, ping_timeout=0.2) as client:
        topic = client.topic(topic_name)
        producer = topic.producer()
        for i in range(4):
            producer.send(str(i).encode())
        sink = rs.acknowledger()
        done = threading.Event()
        got: list[rs.Message[Any]] = []

        def slow(message: rs.Message[Any]) -> rs.Message[Any]:
            time.sleep(0.5)  # longer than ping_timeout: pongs must still be read
            got.append(message)
            if len(got) == 4:
                done.set()
            return message

        connections = proxy.accepted
        stream = topic.observe("sub", subscription_initial_position="Earliest")
        handle = stream.pipe(ops.map(slow)).subscribe(sink)
        assert done.wait(WAIT)
        handle.dispose()
    assert [m.payload for m in got] == [b"0", b"1", b"2", b"3"]
    assert all(m.redelivery_count == 0 for m in got)
    assert proxy.accepted == connections + 1  # never reconnected
    assert (sink.acked, sink.failed) == (4, 0)


@pytest.mark.parametrize("start", [None, "latest"])
def test_a_reader_from_latest_keeps_its_place_through_a_drop_before_its_first_message(
    pulsar: Any, proxy: FaultProxy, topic_name: str, start: str | None
) -> None:
    """It must not reopen at "latest" again, skipping what was published while it was away."""
    received = Payloads(until=b"after")
    with (
        rs.Client(pulsar.ws_url) as direct,
        rs.Client(proxy.ws_url, reconnect=FAST) as client,
    ):
        producer = direct.topic(topic_name).producer()
        producer.send(b"old")
        connections = proxy.accepted

        handle = client.topic(topic_name).observe(start=start).subscribe(received)
        deadline = time.monotonic() + WAIT
        while proxy.open_connections < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # the reader is open at the end of the topic
        proxy.refuse()
        proxy.reset()
        for i in range(3):
            producer.send(f"during-{i}".encode())
        proxy.refuse(False)
        while proxy.accepted < connections + 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # reconnected
        producer.send(b"after")
        assert received.done.wait(WAIT)
        handle.dispose()
    assert received.payloads == [b"during-0", b"during-1", b"during-2", b"after"]


def test_peek_counts_silence_from_the_open_and_raises_when_it_cannot_open(
    pulsar: Any, proxy: FaultProxy, topic_name: str
) -> None:
    with rs.Client(pulsar.ws_url) as direct:
        direct.topic(topic_name).producer().send(b"stored")
    with rs.Client(proxy.ws_url, connect_timeout=1.0, close_timeout=1.0, reconnect=FAST) as client:
        topic = client.topic(topic_name)
        proxy.stall()  # the handshake waits longer than idle
        resume = threading.Timer(0.8, proxy.resume)
        resume.start()
        try:
            assert [m.payload for m in topic.peek(5, idle=0.3)] == [b"stored"]
        finally:
            resume.join()
        proxy.stall()
        with pytest.raises(rs.StargateError):  # not an empty result
            topic.peek(5, idle=0.3, timeout=1.5)
        proxy.resume()


@pytest.mark.parametrize("drop", [False, True])
def test_a_reader_from_latest_never_shows_a_batch_stored_before_it_began(
    pulsar: Any, proxy: FaultProxy, topic_name: str, drop: bool
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
        handle = client.topic(topic_name).observe().subscribe(received)
        deadline = time.monotonic() + WAIT
        while proxy.accepted < connections + 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # the reader's socket and its admin request
        time.sleep(0.3)
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
    pulsar: Any, topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pin may name a message the first socket is about to deliver: it must not be skipped."""
    from rxstargate import _admin

    received = Payloads()
    with rs.Client(pulsar.ws_url) as client:
        producer = client.topic(topic_name).producer()
        producer.send(b"old")
        asked = _admin.last_message_id

        def racing(*args: Any, **kwargs: Any) -> Any:
            producer.send(b"racing")  # after the reader opened, before the answer
            return asked(*args, **kwargs)

        monkeypatch.setattr(_admin, "last_message_id", racing)

        handle = client.topic(topic_name).observe().subscribe(received)
        assert received.done.wait(WAIT)
        handle.dispose()
    assert received.payloads == [b"racing"]
