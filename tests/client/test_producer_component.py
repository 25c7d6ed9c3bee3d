"""The producer against a scripted WebSocket peer: acks, refusals, drops, malformed frames."""

from __future__ import annotations

import asyncio
import base64
import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import reactivex as rx
from marshmallow import Schema, fields
from websockets.sync.server import ServerConnection

import rxstargate as rs

from .conftest import MuteServer, ScriptedPeer, ack_every_message, drop, send_empty_close

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

FAST = rs.Backoff(initial=0.01, cap=0.05, give_up_after=2.0)
WAIT_SECONDS = 10.0
Peer = Callable[..., ScriptedPeer]


def test_send_returns_the_ack_and_puts_the_frame_on_the_wire(scripted_peer: Peer) -> None:
    frames: list[dict[str, Any]] = []

    def handler(ws: ServerConnection) -> None:
        for text in ws:
            frame = json.loads(text)
            frames.append(frame)
            ws.send(
                json.dumps({"result": "ok", "messageId": "CAAQAw==", "context": frame["context"]})
            )

    peer = scripted_peer(handler)
    with rs.Client(peer.url, token="s3cret") as client:
        producer = client.topic("orders").producer(send_timeout_millis=5000)
        ack = producer.send(b"hi", key="k", properties={"a": "1"})
    assert ack.ok
    assert ack.message_id == rs.MessageId("CAAQAw==")
    assert frames == [
        {
            "payload": base64.b64encode(b"hi").decode(),
            "context": ack.context,
            "key": "k",
            "properties": {"a": "1"},
        }
    ]
    assert peer.paths == ["/ws/v2/producer/persistent/public/default/orders?sendTimeoutMillis=5000"]
    assert peer.headers[0]["Authorization"] == "Bearer s3cret"
    assert "s3cret" not in repr(client)


def test_observer_pipelines_and_acks_stream_has_one_item_per_message(scripted_peer: Peer) -> None:
    peer = scripted_peer(ack_every_message)
    acks: list[rs.ProducerAck] = []
    done = threading.Event()
    with rs.Client(peer.url) as client:
        producer = client.topic("orders").producer(max_in_flight=10)
        producer.acks.subscribe(acks.append, on_completed=done.set)
        rx.from_iterable([b"a", "b", rs.OutgoingMessage(b"c", key="k")] * 100).subscribe(producer)
        assert done.wait(10)
    assert len(acks) == 300
    assert all(a.ok for a in acks)
    assert [a.context for a in acks] == [str(i) for i in range(1, 301)]


def test_a_failed_message_is_an_item_and_send_raises_send_error(scripted_peer: Peer) -> None:
    def handler(ws: ServerConnection) -> None:
        for text in ws:
            frame = json.loads(text)
            ws.send(
                json.dumps(
                    {
                        "result": "send-error:8",
                        "errorMsg": "queue full",
                        "context": frame["context"],
                    }
                )
            )

    peer = scripted_peer(handler)
    items: list[rs.ProducerAck] = []
    with rs.Client(peer.url) as client:
        producer = client.topic("orders").producer()
        producer.acks.subscribe(items.append)
        with pytest.raises(rs.SendError) as caught:
            producer.send(b"x")
        with pytest.raises(rs.SendError):
            producer.send(b"y")
    assert caught.value.result == "send-error:8"
    assert [(a.ok, a.error_message) for a in items] == [(False, "queue full")] * 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, rs.BadRequestError),
        (401, rs.AuthenticationError),
        (403, rs.AuthorizationError),
        (404, rs.TopicNotFoundError),
        (409, rs.ConflictError),
        (429, rs.TooManyRequestsError),
        (500, rs.ServerError),
    ],
)
def test_a_refused_handshake_raises_a_typed_error(
    scripted_peer: Peer, status: int, error: type[rs.HandshakeError]
) -> None:
    peer = scripted_peer(ack_every_message, refuse=(status, "Failed to create producer: nope"))
    with rs.Client(peer.url, token="tok") as client, pytest.raises(error) as caught:
        client.topic("orders").producer().send(b"x", timeout=5)
    assert caught.value.status_code == status
    assert "nope" in caught.value.reason
    assert "tok" not in str(caught.value)
    assert caught.value.__cause__ is not None


def test_an_unreachable_port_raises_a_connection_error_quickly() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        rs.Client(f"ws://127.0.0.1:{port}", connect_timeout=2) as client,
        pytest.raises(rs.StargateConnectionError),
    ):
        client.topic("orders").producer().send(b"x")


def test_max_in_flight_blocks_on_next_then_fails_that_message(scripted_peer: Peer) -> None:
    received: queue.Queue[str] = queue.Queue()

    def never_ack(ws: ServerConnection) -> None:
        for text in ws:
            received.put(text)

    peer = scripted_peer(never_ack)
    with rs.Client(peer.url) as client:
        producer = client.topic("orders").producer(max_in_flight=3, timeout=0.1)
        failed: list[rs.ProducerAck] = []
        producer.acks.subscribe(failed.append)
        for payload in (b"1", b"2", b"3"):
            producer.on_next(payload)
        producer.on_next(b"4")  # blocks for the timeout, then fails this one message
        deadline = time.monotonic() + WAIT_SECONDS
        while not failed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [(a.ok, a.result) for a in failed] == [(False, rs.ClientResult.TIMEOUT)]
        with pytest.raises(rs.StargateTimeoutError):
            producer.send(b"5")
        for _ in range(3):
            received.get(timeout=5)
        assert received.empty()


def test_a_server_close_without_status_reconnects_and_resends_pending(scripted_peer: Peer) -> None:
    connections = iter(range(100))
    first_frames: list[str] = []

    def handler(ws: ServerConnection) -> None:
        if next(connections) == 0:
            for text in ws:
                first_frames.append(text)
                if len(first_frames) == 5:
                    send_empty_close(ws)
                    return
        else:
            ack_every_message(ws)

    peer = scripted_peer(handler)
    acks: list[rs.ProducerAck] = []
    done = threading.Event()
    with rs.Client(peer.url, reconnect=FAST) as client:
        producer = client.topic("orders").producer()
        producer.acks.subscribe(acks.append, on_completed=done.set)
        for i in range(5):
            producer.on_next(str(i))
        producer.on_completed()
        assert done.wait(10)
    assert sorted(int(a.context) for a in acks) == [1, 2, 3, 4, 5]
    assert all(a.ok for a in acks)
    assert len(peer.paths) == 2


def test_a_dropped_connection_mid_stream_loses_no_message(scripted_peer: Peer) -> None:
    state = {"connections": 0}

    def handler(ws: ServerConnection) -> None:
        state["connections"] += 1
        if state["connections"] == 1:
            for count, text in enumerate(ws, 1):
                frame = json.loads(text)
                if count % 2:  # ack every other message, then cut the line
                    ws.send(
                        json.dumps(
                            {"result": "ok", "messageId": "CAAQAw==", "context": frame["context"]}
                        )
                    )
                if count == 50:
                    drop(ws)
                    return
        ack_every_message(ws)

    peer = scripted_peer(handler)
    acks: list[rs.ProducerAck] = []
    done = threading.Event()
    with rs.Client(peer.url, reconnect=FAST) as client:
        producer = client.topic("orders").producer(max_in_flight=100)
        producer.acks.subscribe(acks.append, on_completed=done.set)
        rx.from_iterable(range(200)).subscribe(
            lambda i: producer.on_next(str(i)), on_completed=producer.on_completed
        )
        assert done.wait(10)
    contexts = sorted(int(a.context) for a in acks if a.ok)
    assert contexts == list(range(1, 201))


def test_a_malformed_ack_is_counted_and_skipped(scripted_peer: Peer) -> None:
    def handler(ws: ServerConnection) -> None:
        for text in ws:
            ws.send("this is not json")
            ws.send(json.dumps({"unexpected": True}))
            ws.send(
                json.dumps(
                    {
                        "result": "ok",
                        "messageId": "CAAQAw==",
                        "context": json.loads(text)["context"],
                    }
                )
            )

    peer = scripted_peer(handler)
    errors: list[rs.StargateError] = []
    with rs.Client(peer.url) as client:
        client.errors.subscribe(errors.append)
        assert client.topic("orders").producer().send(b"x").ok
        assert client.error_count == 2
    assert all(isinstance(e, rs.ProtocolError) for e in errors)


def test_a_non_retriable_close_fails_pending_messages(scripted_peer: Peer) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.recv()
        ws.close(1008, "policy")

    peer = scripted_peer(handler)
    failed: list[Exception] = []
    with rs.Client(peer.url, reconnect=FAST) as client:
        producer = client.topic("orders").producer()
        producer.acks.subscribe(on_error=failed.append)
        with pytest.raises(rs.SendError):
            producer.send(b"x", timeout=5)
    assert isinstance(failed[0], rs.ConnectionClosedError)
    assert failed[0].code == 1008


def test_unknown_producer_option_is_refused_before_any_traffic(scripted_peer: Peer) -> None:
    peer = scripted_peer(ack_every_message)
    with rs.Client(peer.url) as client, pytest.raises(rs.InvalidOptionError) as caught:
        client.topic("orders").producer(send_timeout_milis=1)
    assert "send_timeout_milis" in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert peer.paths == []


def test_close_ends_every_thread_and_socket(scripted_peer: Peer) -> None:
    peer = scripted_peer(ack_every_message)
    client = rs.Client(peer.url)
    producer = client.topic("a").producer()
    producer.send(b"x")
    client.topic("b").producer().send(b"y")
    client.close()
    with pytest.raises(rs.ClosedError):
        producer.send(b"z")
    assert not [t for t in threading.enumerate() if t.name.startswith("rxstargate")]


class Order(Schema):
    id = fields.Integer(required=True)
    note = fields.String()


def test_a_schema_serialises_objects_and_refuses_bad_ones_per_message(scripted_peer: Peer) -> None:
    payloads: list[bytes] = []

    def handler(ws: ServerConnection) -> None:
        for text in ws:
            frame = json.loads(text)
            payloads.append(base64.b64decode(frame["payload"]))
            ws.send(
                json.dumps({"result": "ok", "messageId": "CAAQAw==", "context": frame["context"]})
            )

    peer = scripted_peer(handler)
    items: list[rs.ProducerAck] = []
    with rs.Client(peer.url) as client:
        producer = client.topic("orders").producer(schema=Order())
        producer.acks.subscribe(items.append)
        assert producer.send({"id": 1, "note": "n"}).ok
        with pytest.raises(rs.SendError) as caught:
            producer.send({"id": "not a number"})
        producer.on_next({"id": 2})
        producer.on_completed()
    assert [json.loads(p) for p in payloads] == [{"id": 1, "note": "n"}, {"id": 2}]
    assert caught.value.result == rs.ClientResult.INVALID_PAYLOAD
    assert [a.ok for a in items] == [True, False, True]


def test_sends_from_many_threads_are_all_acked(scripted_peer: Peer) -> None:
    peer = scripted_peer(ack_every_message)
    with rs.Client(peer.url) as client:
        producer = client.topic("orders").producer(max_in_flight=16)
        acks: list[rs.ProducerAck] = []
        done = threading.Event()
        producer.acks.subscribe(acks.append, on_completed=done.set)

        def work(n: int) -> None:
            for i in range(100):
                producer.on_next(f"{n}-{i}")

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=WAIT_SECONDS)
        producer.on_completed()
        assert done.wait(WAIT_SECONDS)
    assert sorted(int(a.context) for a in acks) == list(range(1, 401))


@pytest.mark.parametrize(
    ("data", "code", "retriable"),
    [
        (b"", 1005, True),
        (b"\x00\x03", 3, True),
        (b"\x03\xe8bye", 1000, True),
        (b"\x03\xf0too big", 1008, False),
    ],
)
def test_close_frames_map_to_connection_closed_errors(
    data: bytes, code: int, retriable: bool
) -> None:
    from rxstargate._transport import _close_error

    error = _close_error(data, "ws://h")
    assert (error.code, error.retriable) == (code, retriable)
    if 1 <= code <= 8 or code == 1005:
        assert "server-side failure" in str(error)


def test_closing_reports_unacknowledged_messages_as_failed(scripted_peer: Peer) -> None:
    received = threading.Event()

    def never_ack(ws: ServerConnection) -> None:
        for _ in ws:
            received.set()

    peer = scripted_peer(never_ack)
    items: list[rs.ProducerAck] = []
    completed = threading.Event()
    outcome: list[BaseException] = []
    client = rs.Client(peer.url)
    producer = client.topic("orders").producer()
    producer.acks.subscribe(items.append, on_completed=completed.set)

    def blocked_send() -> None:
        try:
            producer.send(b"x", timeout=WAIT_SECONDS)
        except rs.StargateError as exc:
            outcome.append(exc)

    sender = threading.Thread(target=blocked_send)
    sender.start()
    assert received.wait(WAIT_SECONDS)
    client.close()
    sender.join(timeout=WAIT_SECONDS)
    assert isinstance(outcome[0], rs.SendError)
    assert [a.ok for a in items] == [False]
    assert completed.is_set()


def test_acks_carry_the_correlation_and_send_async_resolves_each(scripted_peer: Peer) -> None:
    peer = scripted_peer(ack_every_message)
    with rs.Client(peer.url) as client:
        producer = client.topic("orders").producer(max_in_flight=4)
        seen: list[rs.ProducerAck] = []
        producer.acks.subscribe(seen.append)
        futures = [producer.send_async(b"x", key="k", correlation=("order", i)) for i in range(20)]
        acks = [future.result(WAIT_SECONDS) for future in futures]
        producer.on_next(rs.OutgoingMessage(b"y", correlation="observer"))
        too_big = producer.send_async(b"z" * 2_000_000, correlation="big")
        with pytest.raises(rs.SendError) as caught:
            too_big.result(WAIT_SECONDS)
        producer.on_completed()
    assert [a.correlation for a in acks] == [("order", i) for i in range(20)]
    assert caught.value.result == rs.ClientResult.PAYLOAD_TOO_LARGE
    assert {a.correlation for a in seen} >= {"observer", "big", ("order", 0)}


def test_futures_and_callbacks_complete_after_unobserved_sends(scripted_peer: Peer) -> None:
    """With no ``acks`` observer, a producer's first futures and callbacks still complete."""
    peer = scripted_peer(ack_every_message)
    with rs.Client(peer.url) as client:
        producer = client.topic("orders").producer(max_in_flight=4)
        for _ in range(10):
            producer.on_next(b"plain")  # settled on the spot: nothing waits on the acks thread
        producer.flush(WAIT_SECONDS)
        called: list[tuple[bool, str]] = []
        called_back = threading.Event()

        def callback(ack: rs.ProducerAck) -> None:
            called.append((ack.ok, threading.current_thread().name))
            called_back.set()

        producer.send_then(b"then", callback)
        future = producer.send_async(b"async", correlation="c")
        assert future.result(WAIT_SECONDS).correlation == "c"
        assert called_back.wait(WAIT_SECONDS)
        producer.on_completed()
    assert called == [(True, "rxstargate-acks-orders")]


def acks_once_released(
    release: threading.Event,
    stored: list[bytes] | None = None,
    arrived: threading.Semaphore | None = None,
) -> Callable[[ServerConnection], None]:
    """A producer endpoint that answers each frame only once ``release`` is set.

    ``arrived`` is released once for each frame as it comes in.
    """

    def handler(ws: ServerConnection) -> None:
        for entry, text in enumerate(ws):
            if arrived is not None:
                arrived.release()
            release.wait(WAIT_SECONDS)
            frame = json.loads(text)
            if stored is not None:
                stored.append(base64.b64decode(frame["payload"]))
            ws.send(
                json.dumps(
                    {
                        "result": "ok",
                        "messageId": str(rs.MessageId.from_parts(1, entry)),
                        "context": frame["context"],
                    }
                )
            )

    return handler


def test_asend_never_blocks_the_event_loop(scripted_peer: Peer) -> None:
    release = threading.Event()
    peer = scripted_peer(acks_once_released(release))
    with rs.Client(peer.url) as client:
        producer = client.topic("orders").producer(max_in_flight=2)

        async def main() -> tuple[int, list[rs.ProducerAck]]:
            ticks = 0

            async def ticker() -> None:
                # Acks come only once the loop has turned ten times while every slot is taken:
                # an asend() that blocked the loop would never let this run.
                nonlocal ticks
                while ticks < 10:
                    ticks += 1
                    await asyncio.sleep(0.01)
                release.set()

            sends = [asyncio.create_task(producer.asend(str(i).encode())) for i in range(6)]
            ticking = asyncio.create_task(ticker())
            acks = await asyncio.wait_for(asyncio.gather(*sends), WAIT_SECONDS)
            await ticking
            return ticks, acks

        ticks, acks = asyncio.run(main())
        producer.close()
    assert ticks >= 10
    assert all(a.ok for a in acks) and len(acks) == 6


def test_on_completed_right_after_the_last_send_keeps_every_ack(scripted_peer: Peer) -> None:
    peer = scripted_peer(ack_every_message)
    with rs.Client(peer.url) as client:
        for _ in range(20):
            producer = client.topic("orders").producer()
            acks: list[rs.ProducerAck] = []
            producer.acks.subscribe(acks.append)
            producer.on_next(b"only")
            producer.on_completed()  # flush, then end acks: the ack must come first
            assert [a.ok for a in acks] == [True]


def test_a_cancelled_asend_that_waited_for_a_slot_is_never_sent(scripted_peer: Peer) -> None:
    release = threading.Event()
    stored: list[bytes] = []
    arrived = threading.Semaphore(0)
    peer = scripted_peer(acks_once_released(release, stored, arrived))
    with rs.Client(peer.url) as client:
        producer = client.topic("orders").producer(max_in_flight=1)

        async def main() -> None:
            first = asyncio.create_task(producer.asend(b"first"))
            assert await asyncio.to_thread(arrived.acquire, True, WAIT_SECONDS)  # it holds the slot
            for i in range(4):  # no slot: each gives up, and must then not be sent
                # wait_for runs the send up to its wait for a slot before the timeout can fire
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(producer.asend(f"given-up-{i}".encode()), 0.01)
            release.set()
            await asyncio.wait_for(first, WAIT_SECONDS)
            assert (await asyncio.wait_for(producer.asend(b"last"), WAIT_SECONDS)).ok

        asyncio.run(main())
        producer.close()
    assert stored == [b"first", b"last"]


def test_many_asends_share_a_small_window_in_turn(scripted_peer: Peer) -> None:
    peer = scripted_peer(ack_every_message)
    with rs.Client(peer.url) as client:
        producer = client.topic("orders").producer(max_in_flight=3)

        async def main() -> list[rs.ProducerAck]:
            sends = [producer.asend(str(i).encode(), correlation=i) for i in range(300)]
            return await asyncio.wait_for(asyncio.gather(*sends), WAIT_SECONDS)

        acks = asyncio.run(main())
        producer.close()
    assert all(a.ok for a in acks)
    assert [a.correlation for a in acks] == list(range(300))
    assert sorted(int(a.context) for a in acks) == list(range(1, 301))  # no send retried


def test_concurrent_first_sends_share_one_failed_connect() -> None:
    with MuteServer() as mute:  # accepts, never answers the handshake
        with rs.Client(mute.url, connect_timeout=0.3, close_timeout=0.5) as client:
            producer = client.topic("orders").producer()

            async def main() -> list[BaseException | rs.ProducerAck]:
                # A worker thread for each send (the default pool may have fewer): every
                # one of them asks for the socket while the first attempt is under way.
                workers = ThreadPoolExecutor(8, thread_name_prefix="test-send")
                asyncio.get_running_loop().set_default_executor(workers)
                sends = [producer.asend(b"x") for _ in range(8)]
                return await asyncio.gather(*sends, return_exceptions=True)

            outcomes = asyncio.run(main())
        accepted = len(mute.accepted)
    assert all(isinstance(o, rs.StargateError) for o in outcomes)
    assert accepted <= 3  # callers that waited for a failing connect share its failure


class _CountingLock:
    """A lock that counts the callers who came to take it (each releases ``arrived`` once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.arrived = threading.Semaphore(0)

    def __enter__(self) -> None:
        self.arrived.release()
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def test_sends_that_came_while_the_first_connect_was_under_way_share_its_failure() -> None:
    attempts: list[str] = []
    under_way, fail_it = threading.Event(), threading.Event()

    def connect(url: str, config: Any, name: str) -> Any:
        attempts.append(url)
        under_way.set()
        fail_it.wait(WAIT_SECONDS)
        raise rs.StargateConnectionError(f"cannot connect to {url}")

    outcomes: list[BaseException] = []

    def send() -> None:
        try:
            producer.send(b"x")
        except rs.StargateError as exc:
            outcomes.append(exc)

    with rs.Client("ws://127.0.0.1:9", connect=connect) as client:
        producer = client.topic("orders").producer()
        gate = _CountingLock()
        producer._driver.link._open_lock = gate  # type: ignore[assignment]
        first = threading.Thread(target=send, name="test-first-send")
        first.start()
        assert under_way.wait(WAIT_SECONDS)
        later = [threading.Thread(target=send, name="test-later-send") for _ in range(3)]
        for thread in later:
            thread.start()
        for _ in range(4):  # the first send and the three that came while it connects
            assert gate.arrived.acquire(timeout=WAIT_SECONDS)
        fail_it.set()
        for thread in [first, *later]:
            thread.join(WAIT_SECONDS)
    assert len(attempts) == 1
    assert len(outcomes) == 4
    assert all(isinstance(o, rs.StargateConnectionError) for o in outcomes)


def test_a_blocking_send_in_a_futures_done_callback_completes(scripted_peer: Peer) -> None:
    """The callback never runs on the receive thread, which alone reads the ack it waits for."""
    peer = scripted_peer(ack_every_message)
    replies: list[rs.ProducerAck] = []
    threads: list[str] = []
    done = threading.Event()
    with rs.Client(peer.url) as client:
        producer = client.topic("orders").producer(timeout=2)

        def reply(future: Any) -> None:
            threads.append(threading.current_thread().name)
            try:
                replies.append(producer.send(b"reply"))
            finally:
                done.set()

        producer.send_async(b"first").add_done_callback(reply)
        assert done.wait(WAIT_SECONDS)
        producer.close()
    assert [a.ok for a in replies] == [True]
    assert not threads[0].startswith("rxstargate-producer")


def test_a_send_in_a_done_callback_that_would_wait_for_itself_fails_at_once(
    scripted_peer: Peer,
) -> None:
    """With max_in_flight=1 the callback's own message holds the only slot until it returns."""
    peer = scripted_peer(ack_every_message)
    outcome: list[BaseException] = []
    done = threading.Event()
    with rs.Client(peer.url) as client:
        producer = client.topic("orders").producer(max_in_flight=1, timeout=WAIT_SECONDS)

        def reply(future: Any) -> None:
            try:
                producer.send(b"reply")
            except rs.StargateError as exc:
                outcome.append(exc)
            finally:
                done.set()

        producer.send_async(b"first").add_done_callback(reply)
        assert done.wait(WAIT_SECONDS)
        assert producer.send(b"after").ok  # the slot came back once the callback returned
        producer.close()
    assert isinstance(outcome[0], rs.SendError)
    assert outcome[0].result == rs.ClientResult.WOULD_DEADLOCK


def test_flush_returns_once_the_acks_observers_have_seen_every_ack(scripted_peer: Peer) -> None:
    peer = scripted_peer(ack_every_message)
    gate = threading.Event()
    seen: list[rs.ProducerAck] = []
    at_flush: list[int] = []

    def busy_observer(ack: rs.ProducerAck) -> None:
        gate.wait(WAIT_SECONDS)  # still busy with the first ack when flush() is called
        seen.append(ack)

    with rs.Client(peer.url) as client:
        producer = client.topic("orders").producer()
        producer.acks.subscribe(busy_observer)
        for i in range(10):
            producer.on_next(str(i))
        assert producer.send(b"last").ok  # every ack before it has reached the producer

        def flush() -> None:
            producer.flush(WAIT_SECONDS)
            at_flush.append(len(seen))

        flusher = threading.Thread(target=flush, name="test-flusher")
        flusher.start()
        gate.set()
        flusher.join(WAIT_SECONDS)
        producer.close()
    assert at_flush == [11]


def test_close_returns_once_the_acks_observers_have_seen_every_ack(scripted_peer: Peer) -> None:
    peer = scripted_peer(ack_every_message)
    with rs.Client(peer.url) as client:
        for _ in range(20):
            producer = client.topic("orders").producer()
            seen: list[rs.ProducerAck] = []
            producer.acks.subscribe(seen.append)
            assert producer.send(b"open").ok
            for i in range(10):  # (the scripted peer stalls on a longer queue at close)
                producer.on_next(str(i))
            producer.close()  # acks still arriving: each is either ok or failed, and seen
            assert sorted(int(a.context) for a in seen) == list(range(1, 12))


def _failed_for_good(peer_factory: Peer) -> tuple[rs.Client, Any]:
    """A client and a producer whose reconnects are all refused (503), once it gave up."""

    def ack_one_then_drop(ws: ServerConnection) -> None:
        peer.refuse = (503, "down")
        frame = json.loads(next(iter(ws)))
        ws.send(json.dumps({"result": "ok", "messageId": "CAEQAA==", "context": frame["context"]}))
        ws.close()

    peer = peer_factory(ack_one_then_drop)
    client = rs.Client(peer.url, reconnect=rs.Backoff(initial=0.01, cap=0.02, give_up_after=0.05))
    producer = client.topic("t").producer()
    ended = threading.Event()
    producer.acks.subscribe(on_error=lambda _: ended.set())
    assert producer.send(b"first").ok
    assert ended.wait(WAIT_SECONDS)
    return client, producer


def test_a_failed_producer_raises_a_fresh_error_each_time(scripted_peer: Peer) -> None:
    import traceback

    client, producer = _failed_for_good(scripted_peer)
    with client:
        for i in range(300):
            producer.on_next(f"later-{i}".encode())
        raised = []
        for _ in range(2):
            with pytest.raises(rs.ServerError) as caught:
                producer.send(b"x")
            raised.append(caught.value)
        with pytest.raises(rs.ServerError) as flushed:
            producer.flush(1)
    first, second = raised
    assert first is not second
    assert first.__cause__ is second.__cause__ is flushed.value.__cause__
    assert type(first.__cause__) is rs.ServerError
    assert str(first) == str(second) == str(first.__cause__)
    assert (first.status_code, first.reason) == (503, "down")
    assert len(traceback.format_exception(second)) == len(traceback.format_exception(first))
    assert len(traceback.format_exception(first)) < 60


def test_a_failed_producer_logs_its_failure_once(
    scripted_peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    client, producer = _failed_for_good(scripted_peer)
    with client:
        reported: list[rs.StargateError] = []
        client.errors.subscribe(reported.append)
        for i in range(300):
            producer.on_next(f"later-{i}".encode())
    assert len(reported) == 300  # each message is still reported on client.errors
    failure_logs = [r for r in caplog.records if "503" in r.getMessage()]
    assert [r.levelname for r in failure_logs] == ["WARNING"]
