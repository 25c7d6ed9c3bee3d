"""Message ids: the wire base64 of MessageIdData, decoded like Pulsar's clients write it."""

from __future__ import annotations

import base64

import pulsar
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rxstargate as rs
from rxstargate._messageid import decode_message_id, encode_message_id
from rxstargate.models import MessageId


def test_documented_examples_decode() -> None:
    assert MessageId("CAAQAw==").fields[:2] == (0, 3)
    mid = MessageId("CAMQADAA")
    assert (mid.ledger_id, mid.entry_id, mid.partition, mid.batch_index) == (3, 0, -1, -1)
    assert mid.fields.batch_size == 0


def test_str_is_the_wire_form() -> None:
    assert str(MessageId("CAAQAw==")) == "CAAQAw=="


def test_official_client_earliest_and_latest_decode() -> None:
    earliest = MessageId(base64.b64encode(pulsar.MessageId.earliest.serialize()).decode())
    assert (earliest.ledger_id, earliest.entry_id) == (-1, -1)
    latest = MessageId(base64.b64encode(pulsar.MessageId.latest.serialize()).decode())
    assert (latest.ledger_id, latest.entry_id) == (2**63 - 1, 2**63 - 1)


def test_ids_compare_by_position_and_two_encodings_are_equal() -> None:
    with_batch_size = base64.b64encode(bytes([0x08, 0x00, 0x10, 0x03, 0x30, 0x00])).decode()
    assert MessageId(with_batch_size) == MessageId("CAAQAw==")
    assert hash(MessageId(with_batch_size)) == hash(MessageId("CAAQAw=="))
    assert MessageId.from_parts(1, 2) < MessageId.from_parts(1, 3) < MessageId.from_parts(2, 0)
    assert sorted([MessageId.from_parts(5, 0), MessageId.from_parts(1, 9)])[0].ledger_id == 1


@pytest.mark.parametrize("wire", ["not base64!", "not-an-id!", "CA==", "EAM=", "CP///w=="])
def test_malformed_ids_are_refused_when_built_naming_the_id(wire: str) -> None:
    with pytest.raises(rs.ConfigurationError, match="message id") as caught:
        MessageId(wire)
    assert isinstance(caught.value, ValueError)
    assert repr(wire) in str(caught.value)


@pytest.mark.parametrize("wire", ["not base64!", "CA==", "EAM=", "CP///w=="])
def test_malformed_ids_from_the_server_raise_value_error_on_read(wire: str) -> None:
    mid = MessageId._from_wire(wire)  # what receiving paths build: checked when read
    assert str(mid) == wire
    with pytest.raises(ValueError, match="message id"):
        _ = mid.ledger_id


@pytest.mark.parametrize("wire", ["", None, 3])
def test_empty_id_is_refused(wire: object) -> None:
    with pytest.raises(ValueError):
        MessageId(wire)  # type: ignore[arg-type]


_long = st.integers(min_value=0, max_value=2**62)
_index = st.integers(min_value=-1, max_value=2**31 - 1)


@given(_long, _long, _index, _index)
def test_encode_decode_round_trip(ledger: int, entry: int, partition: int, batch: int) -> None:
    fields = decode_message_id(encode_message_id(ledger, entry, partition, batch))
    assert (fields.ledger_id, fields.entry_id, fields.partition, fields.batch_index) == (
        ledger,
        entry,
        partition,
        batch,
    )


@given(_long, _long, st.integers(min_value=-1, max_value=1000))
def test_matches_the_official_client_serialisation(ledger: int, entry: int, partition: int) -> None:
    official = pulsar.MessageId(partition, ledger, entry, -1).serialize()
    fields = decode_message_id(official)
    assert (fields.ledger_id, fields.entry_id, fields.partition) == (ledger, entry, partition)
