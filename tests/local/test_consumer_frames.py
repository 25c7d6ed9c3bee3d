"""The consumer and reader endpoints deliver, settle and answer commands as Pulsar does."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import websocket

pytestmark = pytest.mark.integration


def _publish(raw: Any, topic: str, payloads: list[bytes], **fields: Any) -> list[dict[str, Any]]:
    sock = raw.producer(topic)
    acks: list[dict[str, Any]] = raw.produce(sock, payloads, **fields)
    sock.close()
    return acks


def test_a_delivery_carries_every_field_pulsar_sends(raw: Any, topic_name: str) -> None:
    (ack,) = _publish(
        raw,
        topic_name,
        [b"\x00\xffbody"],
        key="k1",
        properties={"a": "1", "b": "two"},
        eventTime="2024-01-02T03:04:05.678Z",
    )
    sock = raw.consumer(topic_name, "sub")
    message = raw.recv(sock)
    assert message["messageId"] == ack["messageId"]
    assert base64.b64decode(message["payload"]) == b"\x00\xffbody"
    assert message["properties"] == {"a": "1", "b": "two"}
    assert message["key"] == "k1"
    assert message["eventTime"] == "2024-01-02T03:04:05.678Z"
    assert message["redeliveryCount"] == 0
    assert message["publishTime"].endswith("Z")


def test_optional_fields_are_absent_when_unset(raw: Any, topic_name: str) -> None:
    _publish(raw, topic_name, [b""])
    message = raw.recv(raw.consumer(topic_name, "sub"))
    assert message["payload"] == ""
    assert message["properties"] == {}
    assert "key" not in message
    assert "eventTime" not in message


def test_push_mode_stops_at_the_receiver_queue_until_acked(raw: Any, topic_name: str) -> None:
    _publish(raw, topic_name, [str(i).encode() for i in range(8)])
    sock = raw.consumer(topic_name, "sub", receiverQueueSize=3)
    first = raw.arrivals(sock, 3)
    assert len(first) == 3
    raw.send(sock, {"messageId": first[0]["messageId"]})
    assert len(raw.arrivals(sock, 1)) == 1


def test_receiver_queue_size_zero_means_one_at_a_time(raw: Any, topic_name: str) -> None:
    _publish(raw, topic_name, [b"a", b"b"])
    sock = raw.consumer(topic_name, "sub", receiverQueueSize=0)
    assert len(raw.arrivals(sock, 1)) == 1


def test_pull_mode_delivers_only_what_permits_allow(raw: Any, topic_name: str) -> None:
    _publish(raw, topic_name, [str(i).encode() for i in range(10)])
    sock = raw.consumer(topic_name, "sub", pullMode="true")
    assert raw.arrivals(sock, 0) == []
    raw.send(sock, {"type": "permit", "permitMessages": 4})
    got = raw.arrivals(sock, 4, ack=True)  # acks do not add credit in pull mode
    assert [base64.b64decode(m["payload"]) for m in got] == [b"0", b"1", b"2", b"3"]
    raw.send(sock, {"type": "permit", "permitMessages": 2})
    assert len(raw.arrivals(sock, 2, ack=True)) == 2


def test_permits_are_ignored_in_push_mode(raw: Any, topic_name: str) -> None:
    _publish(raw, topic_name, [b"a", b"b", b"c"])
    sock = raw.consumer(topic_name, "sub", receiverQueueSize=1)
    raw.send(sock, {"type": "permit", "permitMessages": 100})
    assert len(raw.arrivals(sock, 1)) == 1


def test_a_nacked_message_is_redelivered_with_a_higher_count(raw: Any, topic_name: str) -> None:
    _publish(raw, topic_name, [b"again"])
    sock = raw.consumer(
        topic_name, "sub", subscriptionType="Shared", negativeAckRedeliveryDelay=100
    )
    first = raw.recv(sock)
    raw.send(sock, {"type": "negativeAcknowledge", "messageId": first["messageId"]})
    second = raw.recv(sock)
    assert second["messageId"] == first["messageId"]
    assert second["redeliveryCount"] >= 1


def test_an_acked_message_is_not_delivered_again_after_reconnect(raw: Any, topic_name: str) -> None:
    _publish(raw, topic_name, [b"one", b"two"])
    sock = raw.consumer(topic_name, "sub")
    first = raw.recv(sock)
    raw.send(sock, {"messageId": first["messageId"]})
    raw.recv(sock)  # "two", left unacked
    sock.close()
    again = raw.before_sentinel(raw.consumer(topic_name, "sub"), topic_name)
    assert [base64.b64decode(m["payload"]) for m in again] == [b"two"]


def test_is_end_of_topic_is_answered_with_a_boolean(raw: Any, topic_name: str) -> None:
    sock = raw.consumer(topic_name, "sub")
    raw.send(sock, {"type": "isEndOfTopic"})
    assert raw.recv(sock) == {"endOfTopic": False}


def test_unsubscribe_keeps_the_socket_open_and_drops_the_subscription(
    raw: Any, topic_name: str
) -> None:
    _publish(raw, topic_name, [b"old"])
    sock = raw.consumer(topic_name, "sub")
    raw.recv(sock)
    raw.send(sock, {"type": "unsubscribe"})
    assert raw.arrivals(sock, 0, ack=True) == []
    sock.ping(b"still-open")
    opcode, _ = sock.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_PONG
    sock.close()
    fresh = raw.consumer(topic_name, "sub", subscriptionInitialPosition="Latest")
    assert raw.before_sentinel(fresh, topic_name) == []  # not "old", which was never acked


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        '{"type": "permit"}',
        '{"messageId": "%%%"}',
        '{"type": "negativeAcknowledge"}',
    ],
)
def test_an_unparsable_command_closes_the_socket_without_status(
    raw: Any, topic_name: str, frame: str
) -> None:
    sock = raw.consumer(topic_name, "sub", pullMode="true")
    sock.send(frame)
    opcode, data = sock.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert data == b""


def test_a_reader_starts_where_asked_and_counts_any_frame_as_ack(raw: Any, topic_name: str) -> None:
    acks = _publish(raw, topic_name, [str(i).encode() for i in range(5)])
    sock = raw.reader(topic_name, messageId=acks[1]["messageId"], receiverQueueSize=2)
    first = raw.arrivals(sock, 2)
    assert [base64.b64decode(m["payload"]) for m in first] == [b"2", b"3"]
    sock.send("anything")
    assert [base64.b64decode(m["payload"]) for m in raw.before_sentinel(sock, topic_name)] == [b"4"]


def test_a_reader_from_latest_sees_only_new_messages(raw: Any, topic_name: str) -> None:
    _publish(raw, topic_name, [b"before"])
    sock = raw.reader(topic_name, messageId="latest")
    raw.send(sock, {"type": "isEndOfTopic"})
    assert raw.recv(sock) == {"endOfTopic": False}
    _publish(raw, topic_name, [b"after"])
    assert base64.b64decode(raw.recv(sock)["payload"]) == b"after"


@pytest.mark.parametrize("subscription_type", ["Exclusive", "Shared"])
def test_an_unacked_message_comes_back_after_the_ack_timeout(
    raw: Any, topic_name: str, subscription_type: str
) -> None:
    _publish(raw, topic_name, [b"slow"])
    sock = raw.consumer(
        topic_name, "sub", subscriptionType=subscription_type, ackTimeoutMillis=1000
    )
    first = raw.recv(sock)
    again = raw.recv(sock)
    assert again["messageId"] == first["messageId"]
    assert again["redeliveryCount"] == first["redeliveryCount"] + 1
    raw.send(sock, {"messageId": again["messageId"]})
    assert raw.before_sentinel_comes_back(sock, topic_name) == []


@pytest.mark.parametrize("subscription_type", ["Exclusive", "Failover", "Shared", "Key_Shared"])
def test_an_ack_timeout_with_a_dead_letter_policy_is_not_held_for_the_nack_delay(
    raw: Any, topic_name: str, subscription_type: str
) -> None:
    # The negative-ack delay (60 s by default) is not the ack timeout's: the message comes
    # again after about 1 s, well within the socket's 20 s timeout (it came after 61 s on
    # Shared and Key_Shared, and never on Exclusive and Failover).
    _publish(raw, topic_name, [b"slow"])
    sock = raw.consumer(
        topic_name,
        "sub",
        subscriptionType=subscription_type,
        ackTimeoutMillis=1000,
        maxRedeliverCount=3,
    )
    first = raw.recv(sock)
    again = raw.recv(sock)
    assert again["messageId"] == first["messageId"]
    assert again["redeliveryCount"] == first["redeliveryCount"] + 1


@pytest.mark.parametrize("subscription_type", ["Exclusive", "Failover"])
def test_a_nacked_message_comes_again_on_an_exclusive_or_failover_socket(
    raw: Any, topic_name: str, subscription_type: str
) -> None:
    _publish(raw, topic_name, [b"again", b"next"])
    sock = raw.consumer(
        topic_name, "sub", subscriptionType=subscription_type, negativeAckRedeliveryDelay=100
    )
    first = raw.recv(sock)
    raw.send(sock, {"type": "negativeAcknowledge", "messageId": first["messageId"]})
    raw.send(sock, {"messageId": raw.recv(sock)["messageId"]})  # "next", acked
    again = raw.recv(sock)
    assert again["messageId"] == first["messageId"]
    assert again["redeliveryCount"] == first["redeliveryCount"] + 1
    raw.send(sock, {"messageId": again["messageId"]})
    assert raw.arrivals(sock, 0, ack=True) == []  # QUIET: five times the nack delay


def test_exclusive_consumers_never_dead_letter_as_in_pulsar(raw: Any, topic_name: str) -> None:
    # Pulsar applies dead-letter policies to Shared and Key_Shared subscriptions only: an
    # Exclusive consumer gets the message again and again.
    _publish(raw, topic_name, [b"poison"])
    sock = raw.consumer(topic_name, "sub", maxRedeliverCount=1, negativeAckRedeliveryDelay=0)
    counts = []
    for _ in range(3):
        message = raw.recv(sock)
        counts.append(message["redeliveryCount"])
        raw.send(sock, {"type": "negativeAcknowledge", "messageId": message["messageId"]})
    assert counts == [0, 1, 2]


def test_ack_timeouts_count_towards_the_dead_letter_policy(raw: Any, topic_name: str) -> None:
    _publish(raw, topic_name, [b"poison"])
    dead = raw.consumer(f"{topic_name}-sub-DLQ", "inspect")
    sock = raw.consumer(
        topic_name,
        "sub",
        subscriptionType="Shared",
        ackTimeoutMillis=1000,
        maxRedeliverCount=1,
        negativeAckRedeliveryDelay=100,
    )
    # Delivered, redelivered once after the ack timeout, then dead-lettered (nothing waits
    # for a silence: the dead-letter topic's copy is the sentinel).
    counts = [raw.recv(sock)["redeliveryCount"] for _ in range(2)]
    assert counts == [0, 1]
    assert base64.b64decode(raw.recv(dead)["payload"]) == b"poison"
