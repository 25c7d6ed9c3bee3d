"""MemoryPulsar spoken to frame by frame, as tests/local speaks to the gateway: Pulsar's rules."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest

import rxstargate as rs
from rxstargate.testing import MemoryPulsar, MemoryTransport

TOPIC = "persistent://public/default/orders"


def _url(kind: str, subscription: str | None = None, **params: Any) -> str:
    url = f"{MemoryPulsar.url}/ws/v2/{kind}/persistent/public/default/orders"
    if subscription is not None:
        url += "/" + quote(subscription, safe="")
    return url + ("?" + urlencode(params) if params else "")


def _open(
    pulsar: MemoryPulsar, kind: str, sub: str | None = None, **params: Any
) -> MemoryTransport:
    transport = pulsar.connect(_url(kind, sub, **params), rs.TransportConfig(), "raw")
    assert isinstance(transport, MemoryTransport)
    return transport


def _send(transport: MemoryTransport, frame: dict[str, Any] | str) -> None:
    transport.send(frame if isinstance(frame, str) else json.dumps(frame))


def _frames(transport: MemoryTransport) -> list[dict[str, Any]]:
    return [json.loads(text) for text in transport.poll()]


def _payloads(frames: list[dict[str, Any]]) -> list[bytes]:
    return [base64.b64decode(f["payload"]) for f in frames]


def _publish(pulsar: MemoryPulsar, count: int) -> None:
    for i in range(count):
        pulsar.publish(TOPIC, str(i).encode())


def test_an_ok_ack_carries_what_pulsar_2_8_writes(pulsar: MemoryPulsar) -> None:
    producer = _open(pulsar, "producer")
    _send(producer, {"payload": "eA==", "context": "c1"})
    (ack,) = _frames(producer)
    assert ack == {
        "result": "ok",
        "messageId": str(pulsar.stored(TOPIC)[0].message_id),
        "context": "c1",
        "errorCode": 0,
        "schemaVersion": 0,
    }


@pytest.mark.parametrize(
    ("frame", "code", "context"),
    [
        ("not json", 3, None),
        ('{"payload": "eA==", "context": "c", "properties": [1]}', 3, None),
        ('{"payload": "%%%", "context": "c"}', 7, "c"),
        ('{"context": "c"}', 7, "c"),
        ('{"payload": "eA==", "context": "c", "eventTime": "2021-10-29 23:01:38"}', 7, "c"),
        ('{"payload": "eA==", "context": "c", "deliverAfterMs": "soon"}', 3, None),
        ('{"payload": "eA==", "context": "c", "key": {"a": 1}}', 3, None),
    ],
)
def test_a_send_pulsar_refuses_is_answered_with_its_error_code(
    pulsar: MemoryPulsar, frame: str, code: int, context: str | None
) -> None:
    producer = _open(pulsar, "producer")
    _send(producer, frame)
    (ack,) = _frames(producer)
    assert ack["result"] == f"send-error:{code}"
    assert ack.get("context") == context and ack["errorMsg"]
    assert pulsar.stored(TOPIC) == []


def test_an_event_time_at_or_before_the_epoch_closes_the_socket_with_1011(
    pulsar: MemoryPulsar,
) -> None:
    """Pulsar's message builder throws on it, uncaught: Jetty closes with 1011 and its name."""
    producer = _open(pulsar, "producer")
    _send(producer, {"payload": "eA==", "context": "c", "eventTime": "1970-01-01T00:00:00Z"})
    with pytest.raises(rs.ConnectionClosedError) as caught:
        producer.recv()
    assert caught.value.code == 1011
    assert pulsar.stored(TOPIC) == []


def test_a_delivery_carries_every_field_pulsar_sends(pulsar: MemoryPulsar) -> None:
    producer = _open(pulsar, "producer")
    _send(
        producer,
        {
            "payload": base64.b64encode(b"\x00\xffbody").decode(),
            "key": "k1",
            "properties": {"a": "1"},
            "eventTime": "2024-01-02T03:04:05.678Z",
        },
    )
    consumer = _open(pulsar, "consumer", "sub", subscriptionInitialPosition="Earliest")
    (message,) = _frames(consumer)
    assert set(message) == {
        "messageId",
        "payload",
        "properties",
        "publishTime",
        "redeliveryCount",
        "key",
        "eventTime",
    }
    assert (message["key"], message["properties"], message["redeliveryCount"]) == (
        "k1",
        {"a": "1"},
        0,
    )
    assert message["eventTime"] == "2024-01-02T03:04:05.678Z"
    assert message["publishTime"].endswith("Z")


def test_push_mode_stops_at_the_receiver_queue_until_acked(pulsar: MemoryPulsar) -> None:
    _publish(pulsar, 8)
    consumer = _open(
        pulsar, "consumer", "sub", receiverQueueSize=3, subscriptionInitialPosition="Earliest"
    )
    first = _frames(consumer)
    assert _payloads(first) == [b"0", b"1", b"2"]
    _send(consumer, {"messageId": first[0]["messageId"]})
    assert _payloads(_frames(consumer)) == [b"3"]
    _send(consumer, {"type": "negativeAcknowledge", "messageId": first[1]["messageId"]})
    assert _payloads(_frames(consumer)) == [b"4"]  # a nack frees the window too


def test_receiver_queue_size_zero_means_one_at_a_time(pulsar: MemoryPulsar) -> None:
    _publish(pulsar, 2)
    consumer = _open(
        pulsar, "consumer", "sub", receiverQueueSize=0, subscriptionInitialPosition="Earliest"
    )
    assert len(_frames(consumer)) == 1


def test_pull_mode_delivers_only_what_permits_allow(pulsar: MemoryPulsar) -> None:
    _publish(pulsar, 10)
    consumer = _open(
        pulsar, "consumer", "sub", pullMode="true", subscriptionInitialPosition="Earliest"
    )
    assert _frames(consumer) == []
    _send(consumer, {"type": "permit", "permitMessages": 4})
    got = _frames(consumer)
    assert _payloads(got) == [b"0", b"1", b"2", b"3"]
    for frame in got:
        _send(consumer, {"messageId": frame["messageId"]})  # acks add no credit in pull mode
    assert _frames(consumer) == []
    _send(consumer, {"type": "permit", "permitMessages": "2"})  # Jackson reads numeric text
    assert len(_frames(consumer)) == 2


def test_permits_are_ignored_in_push_mode(pulsar: MemoryPulsar) -> None:
    _publish(pulsar, 3)
    consumer = _open(
        pulsar, "consumer", "sub", receiverQueueSize=1, subscriptionInitialPosition="Earliest"
    )
    _send(consumer, {"type": "permit", "permitMessages": 100})
    assert len(_frames(consumer)) == 1


def test_is_end_of_topic_is_answered_with_a_boolean(pulsar: MemoryPulsar) -> None:
    consumer = _open(pulsar, "consumer", "sub")
    _send(consumer, {"type": "isEndOfTopic"})
    assert _frames(consumer) == [{"endOfTopic": False}]


@pytest.mark.parametrize(
    "frame",
    ["not json", '{"type": "permit"}', '{"messageId": "%%%"}', '{"type": "negativeAcknowledge"}'],
)
def test_an_unparsable_command_closes_the_socket_without_status(
    pulsar: MemoryPulsar, frame: str
) -> None:
    consumer = _open(pulsar, "consumer", "sub", pullMode="true")
    consumer.send(frame)
    with pytest.raises(rs.ConnectionClosedError) as caught:
        consumer.recv()
    assert caught.value.code == 1005
    assert pulsar.sockets() == []


def test_unsubscribe_keeps_the_socket_open_and_drops_the_subscription(
    pulsar: MemoryPulsar,
) -> None:
    consumer = _open(pulsar, "consumer", "sub")
    assert pulsar.subscriptions(TOPIC) == ["sub"]
    _send(consumer, {"type": "unsubscribe"})
    assert pulsar.subscriptions(TOPIC) == []
    assert not consumer.closed and len(pulsar.sockets()) == 1


def test_unsubscribe_with_other_consumers_connected_closes_the_socket(
    pulsar: MemoryPulsar,
) -> None:
    consumer = _open(pulsar, "consumer", "sub", subscriptionType="Shared")
    _open(pulsar, "consumer", "sub", subscriptionType="Shared")
    _send(consumer, {"type": "unsubscribe"})
    with pytest.raises(rs.ConnectionClosedError):
        consumer.recv()
    assert pulsar.subscriptions(TOPIC) == ["sub"]


def test_a_reader_starts_where_asked_and_counts_any_frame_as_an_ack(
    pulsar: MemoryPulsar,
) -> None:
    _publish(pulsar, 5)
    second = pulsar.stored(TOPIC)[1].message_id
    reader = _open(pulsar, "reader", messageId=str(second), receiverQueueSize=2)
    assert _payloads(_frames(reader)) == [b"2", b"3"]
    reader.send("anything")
    assert _payloads(_frames(reader)) == [b"4"]
    _send(reader, {"type": "isEndOfTopic"})
    assert _frames(reader) == [{"endOfTopic": False}]


def test_a_frame_over_one_mebibyte_closes_the_socket_with_1009(pulsar: MemoryPulsar) -> None:
    producer = _open(pulsar, "producer")
    producer.send("x" * (1024 * 1024 + 1))
    with pytest.raises(rs.ConnectionClosedError) as caught:
        producer.recv()
    assert caught.value.code == 1009 and not caught.value.retriable


def test_a_non_persistent_topic_drops_what_a_consumer_cannot_take_now(
    pulsar: MemoryPulsar,
) -> None:
    url = f"{MemoryPulsar.url}/ws/v2/consumer/non-persistent/public/default/clicks/sub"
    consumer = pulsar.connect(url + "?receiverQueueSize=1", rs.TransportConfig(), "raw")
    assert isinstance(consumer, MemoryTransport)
    for payload in (b"taken", b"dropped"):
        pulsar.publish("non-persistent://public/default/clicks", payload)
    (first,) = _frames(consumer)
    _send(consumer, {"messageId": first["messageId"]})
    assert _payloads([first]) == [b"taken"] and _frames(consumer) == []
    assert pulsar.backlog("non-persistent://public/default/clicks", "sub") == 0
