"""Received Messages are built without the dataclass __init__: the same Message, still frozen."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from rxstargate import _message_factory
from rxstargate._unfrozen import unfrozen_twin
from rxstargate.models import Message, MessageId, TopicName


def test_the_fast_builder_knows_every_field_of_message() -> None:
    assert _message_factory._received is not Message  # a new field would silently slow it


def test_a_built_message_equals_one_made_by_the_constructor_field_by_field() -> None:
    values = {
        "topic": TopicName.parse("orders"),
        "payload": b"hi",
        "message_id": MessageId.from_parts(3, 4),
        "key": "k",
        "properties": MappingProxyType({"a": "1"}),
        "publish_time": datetime(2024, 1, 2, tzinfo=UTC),
        "event_time": datetime(2024, 1, 1, tzinfo=UTC),
        "redelivery_count": 2,
        "value": {"x": 1},
        "schema_error": "bad",
        "_settler": None,
    }
    built = _message_factory._received(*(values[name] for name in _message_factory._FIELDS))
    made = Message(**values)
    assert type(built) is Message
    for field in dataclasses.fields(Message):
        assert getattr(built, field.name) == getattr(made, field.name), field.name
    assert repr(built) == repr(made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.payload = b"changed"  # type: ignore[misc]
    copy = pickle.loads(pickle.dumps(built))
    assert type(copy) is Message and repr(copy) == repr(made) and copy.value == made.value


def test_processed_items_are_built_fast_and_equal_the_constructors() -> None:
    from rxstargate.operators import _outcomes

    assert _outcomes._Twin is not None  # a new field would silently slow it
    built = _outcomes.processed("m", 7, False, 2)  # type: ignore[arg-type]
    made = _outcomes.Processed("m", 7, False, 2)  # type: ignore[arg-type]
    assert type(built) is _outcomes.Processed and repr(built) == repr(made)
    assert dataclasses.astuple(built) == dataclasses.astuple(made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.result = 8  # type: ignore[misc]


def test_no_twin_for_fields_that_are_not_the_dataclass_s_own() -> None:
    assert unfrozen_twin(Message, _message_factory._FIELDS) is not None
    assert unfrozen_twin(Message, _message_factory._FIELDS[::-1]) is None
    assert unfrozen_twin(Message, _message_factory._FIELDS[:-1]) is None
