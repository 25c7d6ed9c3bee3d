"""Gateway pieces on their own: delivery credit, query integers, nudges, redeliveries."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from rxstargate._service_rules.params import ConsumerParams, ParamError, ProducerParams
from rxstargate.local._gateway._consumer import ConsumerSession
from rxstargate.local._gateway._nudge import KICK_FIRST_SECONDS, KICK_MAX_SECONDS
from rxstargate.local._gateway._reader import ReaderSession
from rxstargate.local._gateway._receiving import Credit
from rxstargate.local._gateway._redelivery import BROKER_NACK_DELAY_MS


def test_credit_of_any_size_is_one_addition() -> None:
    credit = Credit(0)
    credit.add(10**15)  # a loop per unit would never return
    credit.add(10**15)
    assert credit.count == 2 * 10**15
    assert credit.take(0)
    assert credit.count == 2 * 10**15 - 1


def test_negative_credit_must_be_made_up_before_a_delivery() -> None:
    credit = Credit(1)
    credit.add(-3)
    assert not credit.take(0)
    credit.add(2)
    assert not credit.take(0)
    credit.add(1)
    assert credit.take(0)
    assert not credit.take(0)


def test_times_formatted_from_the_cache_match_the_calendar() -> None:
    from datetime import UTC, datetime

    from rxstargate._server_time import format_time

    for millis in [0, 1, 10, 120, 999, 1_000, 1_635_548_498_967, 1_764_439_200_500]:
        for step in (0, 1, 999, 86_400_000):
            at = millis + step
            moment = datetime.fromtimestamp(at / 1000, UTC)
            fraction = f".{at % 1000:03d}".rstrip("0").rstrip(".")
            assert format_time(at) == moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


@pytest.mark.parametrize(
    ("value", "accepted"),
    [("0005", 5), ("-7", -7), ("0" * 5000 + "9", 9), ("5\n", None), ("\u0663", None), ("", None)],
)
def test_query_integers_follow_integer_parse_int(value: str, accepted: int | None) -> None:
    if accepted is None:
        with pytest.raises(ParamError, match="For input string"):
            ProducerParams.from_query({"sendTimeoutMillis": value})
    elif accepted >= 0:
        assert ConsumerParams.from_query({"priorityLevel": value}).priority_level == accepted
    else:
        producer = ProducerParams.from_query({"initialSequenceId": value})
        assert producer.initial_sequence_id == accepted


def test_an_idle_shared_socket_nudges_the_broker_ever_more_rarely() -> None:
    now = [0.0]
    kicks: list[float] = []
    session = ConsumerSession(
        _FakeConsumer(),
        ConsumerParams(subscription_type="Shared"),
        bytes,
        lambda: None,
        lambda: None,
        kick=lambda: kicks.append(now[0]),
        clock=lambda: now[0],
    )
    for _ in range(1600):  # 200 s of empty receives, 1/8 s apart (exact in binary)
        session._idle()
        now[0] += 0.125
    gaps = [b - a for a, b in itertools.pairwise(kicks)]
    assert kicks[0] == KICK_FIRST_SECONDS
    assert gaps[:4] == [2.0, 4.0, 8.0, 16.0]
    assert max(gaps) == KICK_MAX_SECONDS
    session._busy()  # a message arrived: quiet starts over
    first_again = now[0] + KICK_FIRST_SECONDS
    for _ in range(16):
        session._idle()
        now[0] += 0.125
    assert kicks[-1] == first_again


class _FakeConsumer:
    def receive(self, timeout_millis: int) -> Any:
        raise TimeoutError

    def close(self) -> None:
        return None


def test_giving_up_ends_the_broker_connection_with_a_fin_not_a_reset() -> None:
    import socket

    from rxstargate.local._serve import end_connections_to

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        broker_side, _ = server.accept()
        other = socket.create_connection(("127.0.0.1", port))  # the same peer is ended too
        other_side, _ = server.accept()
        with client, broker_side, other, other_side:
            broker_side.sendall(b"unread")  # closing now would send a reset
            assert end_connections_to(f"pulsar://127.0.0.1:{port}") == 2
            broker_side.settimeout(5)
            assert broker_side.recv(10) == b""  # an orderly end of stream: a FIN
            assert end_connections_to("pulsar://127.0.0.1:1") == 0


def test_batching_options_are_read_only_when_batching_is_on() -> None:
    unread = {
        "batchingMaxMessages": "x",
        "maxPendingMessages": "-1",
        "batchingMaxPublishDelay": "0",
    }
    assert ProducerParams.from_query(unread).max_pending_messages == 0
    with pytest.raises(ParamError, match="For input string"):
        ProducerParams.from_query({**unread, "batchingEnabled": "true"})
    batching = ProducerParams.from_query({"batchingEnabled": "true", "maxPendingMessages": "7"})
    assert batching.max_pending_messages == 7


@pytest.mark.parametrize(
    ("params", "name"),
    [
        (ConsumerParams, "ackTimeoutMillis"),
        (ConsumerParams, "negativeAckRedeliveryDelay"),
        (ConsumerParams, "priorityLevel"),
        (ConsumerParams, "maxRedeliverCount"),
        (ProducerParams, "sendTimeoutMillis"),
    ],
)
def test_integer_options_are_java_ints_as_pulsar_parses_them(params: Any, name: str) -> None:
    with pytest.raises(ParamError, match="For input string"):
        params.from_query({name: str(2**31)})
    params.from_query({name: str(2**31 - 1)})


def test_batching_integer_options_are_java_ints() -> None:
    for name in ("batchingMaxMessages", "maxPendingMessages", "batchingMaxPublishDelay"):
        with pytest.raises(ParamError, match="For input string"):
            ProducerParams.from_query({"batchingEnabled": "true", name: str(2**31)})
    long_ok = ProducerParams.from_query({"initialSequenceId": str(2**63 - 1)})
    assert long_ok.initial_sequence_id == 2**63 - 1


class _FakeMessage:
    def __init__(self, key: bytes) -> None:
        self.key = key

    def message_id(self) -> Any:
        return self

    def serialize(self) -> bytes:
        return self.key

    def redelivery_count(self) -> int:
        return 0

    def data(self) -> bytes:
        return b"x"

    def properties(self) -> dict[str, str]:
        return {}

    def publish_timestamp(self) -> int:
        return 1_700_000_000_000

    def event_timestamp(self) -> int:
        return 0

    def partition_key(self) -> str:
        return ""


class _NackRecorder(_FakeConsumer):
    def __init__(self) -> None:
        self.nacked: list[Any] = []

    def negative_acknowledge(self, target: Any) -> None:
        self.nacked.append(target)


def _session(subscription_type: str, now: list[float], **params: Any) -> Any:
    consumer = _NackRecorder()
    session = ConsumerSession(
        consumer,
        ConsumerParams(subscription_type=subscription_type, **params),
        bytes,
        lambda: None,
        lambda: None,
        clock=lambda: now[0],
    )
    return session, consumer


def test_a_nack_on_an_exclusive_socket_is_delivered_again_there_after_its_delay() -> None:
    now = [0.0]
    session, consumer = _session("Exclusive", now, negative_ack_redelivery_delay=5000)
    message = _FakeMessage(b"id-1")
    assert session._admit(message) is not None  # delivered
    session._settle(b"id-1", acked=False)
    now[0] = 4.9
    assert session._tick() == []
    now[0] = 5.0
    (frame,) = session._tick()
    assert '"redeliveryCount":1' in frame
    assert consumer.nacked == []  # pulsar-lite ignores redelivery requests on Exclusive
    assert session._tick() == []  # once


def test_a_nack_redelivered_on_the_socket_waits_for_room_in_its_window() -> None:
    now = [0.0]
    session, _ = _session("Failover", now, negative_ack_redelivery_delay=0, pull_mode=True)
    session.give_credit(1)
    assert session._credit.take(0)  # the one permit went to the first delivery
    session._admit(_FakeMessage(b"id-1"))
    session._settle(b"id-1", acked=False)
    assert session._tick() == []  # no permit: it waits
    session.give_credit(1)
    assert len(session._tick()) == 1


def test_a_nack_acked_meanwhile_is_not_delivered_again() -> None:
    now = [0.0]
    session, _ = _session("Exclusive", now, negative_ack_redelivery_delay=1000)
    session._admit(_FakeMessage(b"id-1"))
    session._settle(b"id-1", acked=False)
    session._admit(_FakeMessage(b"id-1"))  # the broker sent it again by itself
    now[0] = 2.0
    assert session._tick() == []


def test_a_shared_nack_goes_to_the_broker_after_the_rest_of_its_delay() -> None:
    now = [0.0]
    session, consumer = _session("Shared", now, negative_ack_redelivery_delay=1000)
    message = _FakeMessage(b"id-1")
    session._admit(message)
    session._settle(b"id-1", acked=False)
    now[0] = (1000 - BROKER_NACK_DELAY_MS) / 1000 - 0.01
    session._tick()
    assert consumer.nacked == []
    now[0] += 0.01
    assert session._tick() == []
    assert consumer.nacked == [message]  # the broker client waits BROKER_NACK_DELAY_MS more


class _ReadId:
    def __init__(self, entry: int) -> None:
        self.entry = entry

    def ledger_id(self) -> int:
        return 1

    def entry_id(self) -> int:
        return self.entry

    def batch_index(self) -> int:
        return -1

    def partition(self) -> int:
        return -1

    def serialize(self) -> bytes:
        return bytes([self.entry])


class _ReadMessage:
    def __init__(self, entry: int) -> None:
        self.id = _ReadId(entry)

    def message_id(self) -> _ReadId:
        return self.id

    def properties(self) -> dict[str, str]:
        return {}

    def data(self) -> bytes:
        return b"x"

    def publish_timestamp(self) -> int:
        return 1

    def event_timestamp(self) -> int:
        return 0

    def partition_key(self) -> str:
        return ""

    def redelivery_count(self) -> int:
        return 0


class _FakeReader:
    def __init__(self, more: bool) -> None:
        self.more = more
        self.closed = False

    def has_message_available(self) -> bool:
        return self.more

    def close(self) -> None:
        self.closed = True


def _idle_reader(more: bool, delivered: int) -> tuple[ReaderSession, _FakeReader, list[Any]]:
    """A reader socket that delivered ``delivered`` messages, then idle for 2 s."""
    now = [0.0]
    first = _FakeReader(more)
    starts: list[Any] = []

    def reopen(start: Any) -> _FakeReader:
        starts.append(start)
        return _FakeReader(more)

    session = ReaderSession(first, 10, reopen, clock=lambda: now[0])
    for entry in range(delivered):
        assert session._admit(_ReadMessage(entry)) is not None
    for _ in range(16):  # 2 s of empty receives, 1/8 s apart
        session._idle()
        now[0] += 0.125
    return session, first, starts


def test_a_reader_idle_while_its_topic_has_more_opens_again_after_its_last_delivery() -> None:
    session, first, starts = _idle_reader(more=True, delivered=3)
    assert session.reopened == 1  # at 1 s of silence, not again before 3 s
    assert first.closed
    assert [start.entry_id() for start in starts] == [2]


def test_a_reader_at_the_end_of_its_topic_or_before_any_delivery_stays_as_it_is() -> None:
    for more, delivered in ((False, 3), (True, 0)):
        session, first, starts = _idle_reader(more, delivered)
        assert session.reopened == 0
        assert not first.closed
        assert starts == []
