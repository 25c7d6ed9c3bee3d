"""Handshakes with MemoryPulsar: scripted refusals, tokens, and Pulsar's own refusals, typed."""

from __future__ import annotations

from typing import Any

import pytest

import rxstargate as rs
from rxstargate.testing import MemoryPulsar
from tests.testing.conftest import Inbox, received


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
        (503, rs.ServerError),
    ],
)
def test_a_refused_handshake_raises_the_typed_error_of_its_status(
    pulsar: MemoryPulsar, client: rs.Client, status: int, error: type[rs.HandshakeError]
) -> None:
    pulsar.refuse_next(status=status, reason="scripted")
    with pytest.raises(error) as caught:
        client.topic("orders").producer().send(b"x")
    assert (caught.value.status_code, caught.value.reason) == (status, "scripted")
    assert client.topic("orders").producer().send(b"y").ok  # used up by one handshake


def test_a_refusal_without_a_reason_has_pulsars_words(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    pulsar.refuse_next(status=401)
    with pytest.raises(rs.AuthenticationError, match="Failed to authenticate"):
        client.topic("orders").producer().send(b"x")


def test_a_consumer_refused_when_it_first_opens_ends_with_the_error(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    pulsar.refuse_next(status=403)
    inbox = Inbox()
    client.topic("orders").observe("sub").subscribe(inbox)
    pulsar.wait_until(lambda: bool(inbox.errors))
    assert isinstance(inbox.errors[0], rs.AuthorizationError)


def test_a_retriable_refusal_after_a_cut_is_retried(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    inbox = Inbox(ack=True)
    client.topic("orders").observe("sub").subscribe(inbox)
    pulsar.wait_until(lambda: len(pulsar.sockets("consumer")) == 1)
    pulsar.refuse_next(status=503, count=3)
    pulsar.cut()
    pulsar.wait_until(lambda: len(pulsar.sockets("consumer")) == 1)
    pulsar.publish("orders", b"after")
    assert [m.payload for m in received(pulsar, inbox, 1)] == [b"after"]


def test_a_refusal_retrying_cannot_fix_ends_the_stream_after_a_cut(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    inbox = Inbox()
    client.topic("orders").observe("sub").subscribe(inbox)
    pulsar.wait_until(lambda: len(pulsar.sockets("consumer")) == 1)
    pulsar.refuse_next(status=403)
    pulsar.cut()
    pulsar.wait_until(lambda: bool(inbox.errors))
    assert isinstance(inbox.errors[0], rs.AuthorizationError)


def test_a_token_is_required_when_set(no_leaked_threads: None) -> None:
    with MemoryPulsar(token="s3cret") as pulsar:
        with pytest.raises(rs.AuthenticationError):
            pulsar.client().topic("orders").producer().send(b"x")
        with pytest.raises(rs.AuthenticationError):
            pulsar.client(token="wrong").topic("orders").last_message_id()
        client = pulsar.client(token="s3cret")
        assert client.topic("orders").producer().send(b"x").ok
        assert client.topic("orders").last_message_id() == pulsar.stored("orders")[0].message_id


def _refusal(pulsar: MemoryPulsar, path: str) -> rs.HandshakeError:
    with pytest.raises(rs.HandshakeError) as caught:
        pulsar.connect(MemoryPulsar.url + path, rs.TransportConfig(), "raw")
    return caught.value


@pytest.mark.parametrize(
    "path",
    [
        "/ws/v2/nothing/persistent/public/default/t",
        "/other/v2/producer/persistent/public/default/t",
        "/ws/v2",
    ],
)
def test_a_path_without_an_endpoint_is_404(pulsar: MemoryPulsar, path: str) -> None:
    assert _refusal(pulsar, path).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/ws/v2/producer/persistent/public/default",
        "/ws/v2/producer/durable/public/default/t",
        "/ws/v2/consumer/persistent/public/default/t/sub/extra",
        "/ws/v2/producer/persistent/pub%20lic/default/t",
        "/ws/v2/consumer/persistent/public/default/t/",
    ],
)
def test_a_malformed_topic_path_is_400(pulsar: MemoryPulsar, path: str) -> None:
    assert _refusal(pulsar, path).status_code == 400


@pytest.mark.parametrize(
    ("endpoint", "query", "detail"),
    [
        ("producer", "sendTimeoutMillis=abc", 'For input string: "abc"'),
        ("producer", "compressionType=lz4", "No enum constant"),
        ("producer", "producerName=%20", "cannot be blank"),
        ("consumer", "subscriptionType=shared", "No enum constant"),
        ("consumer", "ackTimeoutMillis=500", "Ack timeout should be greater than 1000 ms"),
        ("consumer", "ackTimeoutMillis=3000000000", 'For input string: "3000000000"'),
        ("consumer", "negativeAckRedeliveryDelay=3000000000", "For input string"),
        ("consumer", "receiverQueueSize=-1", ""),
        ("consumer", "priorityLevel=-1", ""),
        ("consumer", "deadLetterTopic=dlq", "MaxRedeliverCount must be > 0."),
        ("reader", "receiverQueueSize=x", "For input string"),
    ],
)
def test_a_bad_query_parameter_is_400_invalid_query_params(
    pulsar: MemoryPulsar, endpoint: str, query: str, detail: str
) -> None:
    path = f"/ws/v2/{endpoint}/persistent/public/default/t"
    if endpoint == "consumer":
        path += "/sub"
    refusal = _refusal(pulsar, f"{path}?{query}")
    assert refusal.status_code == 400
    assert refusal.reason.startswith("Invalid query params: ")
    assert detail in refusal.reason


def test_batching_options_are_read_only_when_batching_is_on(pulsar: MemoryPulsar) -> None:
    path = "/ws/v2/producer/persistent/public/default/t?batchingMaxPublishDelay=0"
    pulsar.connect(MemoryPulsar.url + path, rs.TransportConfig(), "raw")
    assert len(pulsar.sockets("producer")) == 1  # ignored (not even parsed) without batching
    refusal = _refusal(pulsar, f"{path}&batchingEnabled=true")
    assert (refusal.status_code, refusal.reason) == (
        400,
        "Invalid query params: configured value for batching delay must be at least 1ms",
    )


def test_an_empty_subscription_is_400(pulsar: MemoryPulsar) -> None:
    refusal = _refusal(pulsar, "/ws/v2/consumer/persistent/public/default/t/")
    assert (refusal.status_code, refusal.reason) == (400, "Empty subscription name")


def test_an_unknown_start_message_id_for_a_reader_is_500(pulsar: MemoryPulsar) -> None:
    refusal = _refusal(pulsar, "/ws/v2/reader/persistent/public/default/t?messageId=%25%25%25")
    assert refusal.status_code == 500
    assert refusal.reason.startswith("Failed to create reader: ")


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("", "Should set topics or topicsPattern"),
        ("topics=a&topicsPattern=b", "Topics must be null when use topicsPattern"),
        ("topics=a,,b", "topicNames cannot have blank topic"),
    ],
)
def test_a_multi_topic_consumer_needs_topics_or_a_pattern(
    pulsar: MemoryPulsar, query: str, detail: str
) -> None:
    refusal = _refusal(pulsar, f"/ws/v3/consumer/sub?{query}")
    assert (refusal.status_code, refusal.reason) == (400, detail)


def test_a_listed_topic_of_an_unknown_domain_is_400(pulsar: MemoryPulsar) -> None:
    refusal = _refusal(pulsar, "/ws/v3/consumer/sub?topics=a,durable://public/default/b")
    assert (refusal.status_code, refusal.reason) == (400, "Invalid topic domain: 'durable'")


def test_a_pattern_consumer_reads_the_matching_topics_of_its_namespace(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    for name in ("orders-eu", "orders-us", "refunds", "other/ns/orders-x"):
        pulsar.publish(name, name.encode())
    inbox = Inbox(ack=True)
    client.topics("orders-.*").observe("audit", start="earliest").subscribe(inbox)
    got: Any = received(pulsar, inbox, 2)
    assert sorted(m.payload for m in got) == [b"orders-eu", b"orders-us"]
    assert len(pulsar.sockets("consumer")[0].topics) == 2


def test_a_pattern_that_matches_nothing_gives_a_socket_that_receives_nothing(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    inbox = Inbox()
    client.topics("nothing-.*").observe("audit").subscribe(inbox)
    pulsar.wait_until(lambda: len(pulsar.sockets("consumer")) == 1)
    pulsar.publish("nothing-yet", b"x")  # created after the socket opened: not added
    assert pulsar.topics() == ["persistent://public/default/nothing-yet"]
    assert pulsar.subscriptions("nothing-yet") == [] and len(inbox) == 0
