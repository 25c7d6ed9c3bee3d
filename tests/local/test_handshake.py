"""Refused upgrades carry Pulsar's HTTP statuses and reasons."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _body(refusal: Any) -> str:
    return (refusal.resp_body or b"").decode()


@pytest.mark.parametrize(
    "path",
    [
        "/ws/v2/nothing/persistent/public/default/t",
        "/other/v2/producer/persistent/public/default/t",
        "/ws/v2",
    ],
)
def test_a_path_without_an_endpoint_is_404(raw: Any, path: str) -> None:
    assert raw.refusal(raw.ws_url + path).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/ws/v2/producer/persistent/public/default",
        "/ws/v2/producer/durable/public/default/t",
        "/ws/v2/consumer/persistent/public/default/t/sub/extra",
        "/ws/v2/consumer/persistent/public/default/a%2Fb",
        "/ws/v2/producer/persistent/pub%20lic/default/t",
    ],
)
def test_a_malformed_topic_path_is_400(raw: Any, path: str) -> None:
    assert raw.refusal(raw.ws_url + path).status_code == 400


def test_an_empty_subscription_is_400(raw: Any, topic_name: str) -> None:
    url = raw.url("consumer", topic_name, "")
    refusal = raw.refusal(url)
    assert refusal.status_code == 400
    assert "Empty subscription name" in _body(refusal)


@pytest.mark.parametrize(
    ("kind", "params", "detail"),
    [
        ("producer", {"sendTimeoutMillis": "abc"}, 'For input string: "abc"'),
        ("producer", {"sendTimeoutMillis": "-1"}, ""),
        ("producer", {"compressionType": "lz4"}, "No enum constant"),
        ("producer", {"hashingScheme": "Murmur"}, "No enum constant"),
        ("producer", {"messageRoutingMode": "Random"}, "No enum constant"),
        ("producer", {"producerName": " "}, ""),
        ("producer", {"batchingEnabled": "true", "batchingMaxPublishDelay": "0"}, ""),
        ("consumer", {"subscriptionType": "shared"}, "No enum constant"),
        ("consumer", {"ackTimeoutMillis": "500"}, "Ack timeout should be greater than 1000 ms"),
        ("consumer", {"receiverQueueSize": "-1"}, ""),
        ("consumer", {"receiverQueueSize": "99999999999"}, "For input string"),
        ("consumer", {"priorityLevel": "-1"}, ""),
        ("consumer", {"subscriptionMode": "Sometimes"}, "No enum constant"),
        ("consumer", {"subscriptionInitialPosition": "earliest"}, "No enum constant"),
        ("consumer", {"negativeAckRedeliveryDelay": "x"}, "For input string"),
        ("consumer", {"deadLetterTopic": "dlq"}, "MaxRedeliverCount must be > 0."),
        ("consumer", {"maxRedeliverCount": "0"}, "MaxRedeliverCount must be > 0."),
        ("reader", {"receiverQueueSize": "x"}, "For input string"),
    ],
)
def test_a_bad_query_parameter_is_400_invalid_query_params(
    raw: Any, topic_name: str, kind: str, params: dict[str, str], detail: str
) -> None:
    subscription = "sub" if kind == "consumer" else None
    refusal = raw.refusal(raw.url(kind, topic_name, subscription, **params))
    assert refusal.status_code == 400
    assert _body(refusal).startswith("Invalid query params: ")
    assert detail in _body(refusal)


def test_booleans_are_lenient_as_in_java(raw: Any, topic_name: str) -> None:
    raw.consumer(topic_name, "sub", pullMode="yes-please")  # parsed as false, not refused


def test_an_unknown_start_message_id_for_a_reader_is_500(raw: Any, topic_name: str) -> None:
    refusal = raw.refusal(raw.url("reader", topic_name, messageId="%%%"))
    assert refusal.status_code == 500
    assert _body(refusal).startswith("Failed to create reader: ")


def test_a_second_exclusive_consumer_is_409_at_once(raw: Any, topic_name: str) -> None:
    raw.consumer(topic_name, "sub")
    # Well under the broker client's operation timeout, after which pulsar-lite would answer.
    refusal = raw.refusal(raw.url("consumer", topic_name, "sub"), timeout=5)
    assert refusal.status_code == 409
    assert "Failed to create consumer" in _body(refusal)
    # The first consumer and the shared broker connection are unharmed.
    sock = raw.producer(topic_name)
    raw.send(sock, {"payload": "eA==", "context": "after"})
    assert raw.recv(sock)["result"] == "ok"


def test_another_subscription_type_on_a_held_subscription_is_409(raw: Any, topic_name: str) -> None:
    raw.consumer(topic_name, "sub", subscriptionType="Shared")
    raw.consumer(topic_name, "sub", subscriptionType="Shared")
    url = raw.url("consumer", topic_name, "sub", subscriptionType="Failover")
    assert raw.refusal(url).status_code == 409


def test_the_subscription_is_free_again_once_its_consumer_left(raw: Any, topic_name: str) -> None:
    first = raw.consumer(topic_name, "sub")
    first.close()
    raw.consumer(topic_name, "sub")


def test_subscription_names_are_url_decoded(raw: Any, topic_name: str) -> None:
    raw.consumer(topic_name, "a b+c/d")
    refusal = raw.refusal(raw.url("consumer", topic_name, "a b+c/d"))
    assert refusal.status_code == 409


def test_a_v1_path_with_a_cluster_segment_is_served(raw: Any, topic_name: str) -> None:
    local = topic_name.rsplit("/", 1)[1]
    sock = raw.connect(f"{raw.ws_url}/ws/producer/persistent/public/standalone/default/{local}")
    raw.send(sock, {"payload": "eA==", "context": "v1"})
    assert raw.recv(sock)["result"] == "ok"


def test_the_pingpong_endpoint_answers_pings(raw: Any) -> None:
    sock = raw.connect(raw.ws_url + "/ws/v2/pingpong")
    sock.ping(b"p")
    assert sock.recv_data(control_frame=True)[1] == b"p"


def test_a_producer_name_in_use_on_the_topic_is_409(raw: Any, topic_name: str) -> None:
    raw.producer(topic_name, producerName="alice")
    refusal = raw.refusal(raw.url("producer", topic_name, producerName="alice"))
    assert refusal.status_code == 409
    assert "Failed to create producer" in _body(refusal)
    raw.producer(topic_name, producerName="bob")


def test_a_producer_name_is_free_again_once_its_socket_closed(raw: Any, topic_name: str) -> None:
    raw.producer(topic_name, producerName="carol").close()
    raw.producer(topic_name, producerName="carol")


def test_the_longest_topic_name_the_client_takes_fits_in_every_handshake(client: Any) -> None:
    import threading

    from rxstargate.models import MAX_TOPIC_URL_BYTES

    local = "é" * ((MAX_TOPIC_URL_BYTES - len("persistent/public/default/")) // 6)
    topic = client.topic(local)
    assert len(topic.name.url_path()) > MAX_TOPIC_URL_BYTES - 6
    got: list[bytes] = []
    arrived = threading.Event()
    options = {"ack_timeout_millis": 2**31 - 1, "negative_ack_redelivery_delay": 60_000}
    handle = topic.observe(
        "a-subscription", subscription_type="Shared", start="earliest", **options
    ).subscribe(lambda m: (got.append(m.payload), m.ack(), arrived.set()))
    try:
        assert topic.producer(send_timeout_millis=30_000).send(b"long").ok
        assert arrived.wait(20)
    finally:
        handle.dispose()
    assert got == [b"long"]
