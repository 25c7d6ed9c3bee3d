"""Pulsar's admin ``lastMessageId`` on the gateway's port, through ``topic.last_message_id()``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pulsar as pulsar_client
import pytest

import rxstargate as rs
from rxstargate.local import LocalPulsar

pytestmark = pytest.mark.integration


def test_it_is_the_id_of_the_last_message_sent(pulsar: Any, topic_name: str) -> None:
    with rs.Client(pulsar.ws_url) as client:
        topic = client.topic(topic_name)
        producer = topic.producer()
        acks = [producer.send(f"m{i}".encode()) for i in range(3)]
        assert topic.last_message_id() == acks[-1].message_id
        assert topic.last_message_id() == acks[-1].message_id  # asking twice changes nothing
        assert client.topic(topic_name + "-new").last_message_id() is None


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/admin/v2/non-persistent/public/default/t/lastMessageId", 405, "non-persistent"),
        ("/admin/v2/persistent/public/default/t/stats", 404, "Not Found"),
        ("/admin/v2/persistent/pub%20lic/default/t/lastMessageId", 412, "Invalid topic name"),
    ],
)
def test_other_requests_are_refused_with_a_json_reason(
    pulsar: Any, path: str, status: int, reason: str
) -> None:
    url = pulsar.ws_url.replace("ws://", "http://", 1) + path
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=10)
    assert info.value.code == status
    assert reason in json.loads(info.value.read())["reason"]
    info.value.close()


def _subscriptions(directory: str, topic: rs.TopicName) -> list[str]:
    """The subscriptions pulsar-lite recorded for a topic (it keeps deleted ones listed)."""
    metadata = json.loads((Path(directory) / "broker-data.metadata.json").read_text())
    tenants = next(v for k, v in metadata.items() if k not in ("version", "partitioned_topics"))
    topics = tenants[topic.tenant][topic.namespace][topic.persistence.value]
    return list(topics[topic.topic]["subscriptions"])


def test_it_needs_the_token_and_leaves_no_subscription_behind() -> None:
    with LocalPulsar(token="s3cret", gateway_in_process=True) as local:
        assert local.directory is not None
        with rs.Client(local.ws_url) as anonymous, pytest.raises(rs.AuthenticationError):
            anonymous.topic("t").last_message_id()
        with rs.Client(local.ws_url, token="s3cret") as client:
            topic = client.topic("t")
            producer = topic.producer()
            producer.send(b"before")
            topic.last_message_id()
            temporary = [
                name
                for name in _subscriptions(local.directory, topic.name)
                if name.startswith("rxstargate-")
            ]
            assert len(temporary) == 1
            after = producer.send(b"after").message_id
            assert topic.last_message_id() == after
            broker = pulsar_client.Client(
                local.broker_url,
                logger=pulsar_client.FileLogger(pulsar_client.LoggerLevel.Error, "/dev/null"),
            )
            try:
                # A subscription left behind would resume before "after"; a new one starts
                # after it, at the message sent once it exists.
                consumer = broker.subscribe(str(topic.name), temporary[0])
                producer.send(b"sentinel")
                assert consumer.receive(10_000).data() == b"sentinel"
            finally:
                broker.close()
