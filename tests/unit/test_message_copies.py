"""Messages through pickle and copy: a pickled message is its data, a copy settles as it does."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest

from rxstargate import AckError
from rxstargate._message_factory import _received
from rxstargate.models import Message, MessageId, TopicName


class SocketSettler:
    """Stands for the socket a message came from: what a process cannot pickle."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: list[Message[Any]] = []

    def ack(self, message: Message[Any], on_lost: Callable[[Any], None] | None = None) -> None:
        self.acked.append(message)

    def nack(self, message: Message[Any], on_lost: Callable[[Any], None] | None = None) -> None:
        raise AssertionError("not nacked in these tests")


def received(settler: SocketSettler) -> Message[Any]:
    return _received(
        TopicName.parse("orders"),
        b"order-1",
        MessageId.from_parts(3, 4),
        "customer-7",
        MappingProxyType({"region": "eu"}),
        datetime(2024, 1, 2, tzinfo=UTC),
        None,
        1,
        {"total": [1, 2]},
        None,
        settler,
    )


def same_data(one: Message[Any], other: Message[Any]) -> bool:
    return all(
        getattr(one, f.name) == getattr(other, f.name)
        for f in dataclasses.fields(Message)
        if f.name != "_settler"
    )


def test_a_received_message_pickles_as_its_data_and_cannot_be_acked_from_the_copy() -> None:
    settler = SocketSettler()
    message = received(settler)
    again = pickle.loads(pickle.dumps(message))
    assert type(again) is Message
    assert same_data(again, message)
    assert isinstance(again.properties, MappingProxyType)  # still read-only
    with pytest.raises(AckError):
        again.ack()
    message.ack()  # the original still settles on its socket
    assert settler.acked == [message]


def test_a_message_made_by_hand_pickles_with_or_without_properties() -> None:
    for made in (
        Message(TopicName.parse("orders"), b"x", MessageId.from_parts(1, 2)),
        Message(TopicName.parse("orders"), b"x", MessageId.from_parts(1, 2), properties={"a": "b"}),
    ):
        assert same_data(pickle.loads(pickle.dumps(made)), made)


def test_a_copy_is_the_message_and_a_deep_copy_settles_on_the_same_socket() -> None:
    settler = SocketSettler()
    message = received(settler)
    assert copy.copy(message) is message  # immutable: nothing to copy
    deep = copy.deepcopy(message)
    assert same_data(deep, message)
    assert deep.value is not message.value and deep.value["total"] is not message.value["total"]
    deep.ack()
    assert settler.acked == [deep]
