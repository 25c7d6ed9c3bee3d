"""Option schemas: integer options stay within the Java types Pulsar parses them into."""

from __future__ import annotations

from typing import Any

import pytest

import rxstargate as rs
from rxstargate.options import consumer_query, producer_query, reader_query

INT_MAX = 2**31 - 1


@pytest.mark.parametrize(
    ("query", "name", "highest"),
    [
        (producer_query, "send_timeout_millis", INT_MAX),
        (producer_query, "batching_max_messages", INT_MAX),
        (producer_query, "max_pending_messages", INT_MAX),
        (producer_query, "batching_max_publish_delay", INT_MAX),
        (producer_query, "initial_sequence_id", 2**63 - 1),
        (consumer_query, "ack_timeout_millis", INT_MAX),
        (consumer_query, "priority_level", INT_MAX),
        (consumer_query, "max_redeliver_count", INT_MAX),
        (consumer_query, "negative_ack_redelivery_delay", INT_MAX),
        (consumer_query, "receiver_queue_size", 1000),
        (reader_query, "receiver_queue_size", 1000),
    ],
)
def test_an_integer_option_past_pulsars_type_is_refused_naming_it(
    query: Any, name: str, highest: int
) -> None:
    assert query({name: highest}) != {}
    with pytest.raises(rs.ConfigurationError, match=name) as caught:
        query({name: highest + 1})
    assert isinstance(caught.value, ValueError)
    assert list(caught.value.messages) == [name]  # type: ignore[attr-defined]


def test_max_pending_messages_of_two_to_the_forty_is_refused_before_any_traffic() -> None:
    client = rs.Client("ws://127.0.0.1:1")  # nothing listens: refusing must not connect
    try:
        with pytest.raises(rs.ConfigurationError, match="max_pending_messages"):
            client.topic("t").producer(max_pending_messages=2**40)
    finally:
        client.close()


def test_initial_sequence_id_may_be_any_java_long() -> None:
    assert producer_query({"initial_sequence_id": -(2**63)}) == {"initialSequenceId": str(-(2**63))}
    with pytest.raises(rs.ConfigurationError, match="initial_sequence_id"):
        producer_query({"initial_sequence_id": -(2**63) - 1})
