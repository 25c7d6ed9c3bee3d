"""observe()'s arguments, checked before any traffic: what a bad one raises. No sockets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import rxstargate as rs


@pytest.fixture
def topic() -> Iterator[rs.Topic]:
    with rs.Client("ws://127.0.0.1:1") as client:
        yield client.topic("orders")


def test_a_start_with_a_position_that_is_not_one_names_the_option(topic: rs.Topic) -> None:
    with pytest.raises(rs.InvalidOptionError, match="subscription_initial_position"):
        topic.observe("sub", start="earliest", subscription_initial_position="earliest-ish")
