"""Topic names: parsing the forms Pulsar users write, refusing the rest before any traffic."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxstargate.exceptions import InvalidTopicNameError
from rxstargate.models import MAX_TOPIC_URL_BYTES, Persistence, TopicName


def test_short_name_defaults_to_public_default_persistent() -> None:
    name = TopicName.parse("orders")
    assert name == TopicName(Persistence.PERSISTENT, "public", "default", "orders")
    assert str(name) == "persistent://public/default/orders"


def test_tenant_namespace_topic_form() -> None:
    assert str(TopicName.parse("acme/eu/orders")) == "persistent://acme/eu/orders"


@pytest.mark.parametrize("domain", ["persistent", "non-persistent"])
def test_full_names_keep_their_domain(domain: str) -> None:
    name = TopicName.parse(f"{domain}://acme/eu/clicks")
    assert name.persistence.value == domain
    assert (name.tenant, name.namespace, name.topic) == ("acme", "eu", "clicks")
    assert TopicName.parse(str(name)) == name


def test_parse_returns_a_topic_name_unchanged() -> None:
    name = TopicName.parse("orders")
    assert TopicName.parse(name) is name


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("", "empty"),
        ("a/b", "tenant/namespace/topic"),
        ("a/b/c/d", "tenant/namespace/topic"),
        ("kafka://a/b/c", "'kafka'"),
        ("persistent://a/b", "persistent://tenant/namespace/topic"),
        ("persistent://a//c", "namespace"),
        ("persistent:///b/c", "tenant"),
        ("persistent://a/b/", "empty"),
        ("has space", "spaces"),
        ("persistent://te nant/b/c", "tenant"),
    ],
)
def test_malformed_names_raise_a_value_error_naming_the_problem(bad: str, words: str) -> None:
    with pytest.raises(InvalidTopicNameError, match=words) as info:
        TopicName.parse(bad)
    assert isinstance(info.value, ValueError)


def test_non_string_is_refused() -> None:
    with pytest.raises(InvalidTopicNameError, match="str"):
        TopicName.parse(42)  # type: ignore[arg-type]


def test_topic_names_are_immutable_and_hashable() -> None:
    name = TopicName.parse("orders")
    with pytest.raises(AttributeError):
        name.topic = "other"  # type: ignore[misc]
    assert {name, TopicName.parse("persistent://public/default/orders")} == {name}


_part = st.from_regex(r"[A-Za-z0-9_.=:-]{1,12}", fullmatch=True)


@given(_part, _part, st.from_regex(r"[A-Za-z0-9_.%+-]{1,20}", fullmatch=True))
def test_full_name_round_trips(tenant: str, namespace: str, topic: str) -> None:
    name = TopicName(Persistence.PERSISTENT, tenant, namespace, topic)
    assert TopicName.parse(str(name)) == name


def test_a_name_too_long_for_a_url_is_refused_stating_the_limit() -> None:
    with pytest.raises(InvalidTopicNameError, match="the limit is 4096") as caught:
        TopicName.parse("x" * 10_000)
    assert "10026 bytes" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_the_limit_counts_the_name_as_the_url_carries_it() -> None:
    prefix = len("persistent/public/default/")
    TopicName.parse("x" * (MAX_TOPIC_URL_BYTES - prefix))  # exactly at the limit
    with pytest.raises(InvalidTopicNameError, match="4096"):
        TopicName.parse("x" * (MAX_TOPIC_URL_BYTES - prefix + 1))
    # "é" is two UTF-8 bytes, six characters once percent-encoded.
    TopicName.parse("é" * ((MAX_TOPIC_URL_BYTES - prefix) // 6))
    with pytest.raises(InvalidTopicNameError, match="4096"):
        TopicName.parse("é" * ((MAX_TOPIC_URL_BYTES - prefix) // 6 + 1))


def test_a_client_refuses_a_name_too_long_before_any_traffic() -> None:
    import rxstargate as rs

    with rs.Client("ws://127.0.0.1:1") as client, pytest.raises(rs.ConfigurationError, match="URL"):
        client.topic("x" * 10_000)  # nothing listens there: refusing must not connect


@pytest.mark.parametrize(
    ("opens", "longest"),
    [
        (lambda topic: topic.observe("s" * 10_000), "subscription"),
        (lambda topic: topic.consume("s" * 10_000, lambda message: None), "subscription"),
        (lambda topic: topic.producer(producer_name="p" * 10_000), "options"),
        (
            lambda topic: topic.observe(
                "s", subscription_type="Shared", dead_letter_topic="d" * 10_000
            ),
            "options",
        ),
    ],
    ids=["subscription", "consume", "producer-name", "dead-letter-topic"],
)
def test_an_endpoint_too_long_for_a_url_is_refused_before_any_traffic(
    opens: Any, longest: str
) -> None:
    import rxstargate as rs

    with (
        rs.Client("ws://127.0.0.1:1") as client,  # nothing listens there
        pytest.raises(rs.ConfigurationError, match="the limit is 6144") as caught,
    ):
        opens(client.topic("orders"))
    assert f"the {longest} " in str(caught.value)


def test_an_endpoint_within_the_limit_is_accepted() -> None:
    import rxstargate as rs

    with rs.Client("ws://127.0.0.1:1") as client:
        topic = client.topic("t" * 2000)
        topic.observe("s" * 2000)  # streams open when subscribed: no traffic here
        topic.producer(producer_name="p" * 2000)
