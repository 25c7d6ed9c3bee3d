"""Every side against Pulsar's own frames: the client's codec, the local gateway's, MemoryPulsar's.

Each side is checked against the golden data (Pulsar's docs and source), not against another
side, so a mistake made the same way on two of them cannot pass. The gateway and MemoryPulsar
read frames and write acks with one set of server-side rules (``rxstargate/_service_rules``),
checked here once; what each side writes or maps on its own is checked for each.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from rxstargate._frames import (
    decode_message,
    decode_producer_ack,
    encode_ack,
    encode_nack,
    encode_permit,
    encode_send,
)
from rxstargate._messageid import decode_message_id
from rxstargate._pulsar_time import format_pulsar_time, parse_pulsar_time, to_epoch_millis
from rxstargate.exceptions import InvalidTopicNameError
from rxstargate.models import TopicName
from tests.golden import frames as golden


def _json(text: str) -> Any:
    return json.loads(text)


# --- the server side's shared rules, and the gateway -------------------------------------------


class _Message:
    """What the gateway reads from a broker message (the official client's Message methods)."""

    def __init__(self, payload: bytes, published: int, event: int = 0, key: str = "") -> None:
        self._payload, self._published, self._event, self._key = payload, published, event, key

    def data(self) -> bytes:
        return self._payload

    def properties(self) -> dict[str, str]:
        return {}

    def publish_timestamp(self) -> int:
        return self._published

    def event_timestamp(self) -> int:
        return self._event

    def redelivery_count(self) -> int:
        return 0

    def partition_key(self) -> str:
        return self._key


def test_the_gateway_reads_the_docs_send_frame() -> None:
    from rxstargate.local._gateway._producer import decode_send

    context, payload, kwargs = decode_send(_json(golden.SEND))
    assert context == "1"
    assert payload == golden.SEND_PAYLOAD
    assert kwargs == {"properties": golden.SEND_PROPERTIES}


def test_the_server_side_writes_ok_acks_as_pulsar_2_8_does() -> None:
    from rxstargate._service_rules.send_frame import ok_ack

    assert _json(ok_ack("CPEKEINF", "1")) == _json(golden.ACK_OK_2_8)
    without = _json(ok_ack("CAAQAw==", None))
    documented = _json(golden.ACK_OK_DOCS)
    assert "context" not in without
    assert {k: without[k] for k in ("result", "messageId")} == {
        k: documented[k] for k in ("result", "messageId")
    }


def test_the_server_side_writes_error_acks_as_pulsar_does() -> None:
    from rxstargate._service_rules.send_frame import error_ack

    documented = _json(golden.ACK_ERROR_DOCS)
    parse_error = _json(error_ack(3, documented["errorMsg"], None))
    assert parse_error == {
        "result": documented["result"],
        "errorMsg": documented["errorMsg"],
        "errorCode": 0,
        "schemaVersion": 0,
    }  # no context: Pulsar cannot read it from a frame it could not parse
    assert _json(error_ack(7, "Invalid Base64", "1"))["context"] == documented["context"]


def test_the_server_side_reads_the_docs_consumer_commands() -> None:
    from rxstargate._service_rules.commands import Command, parse_command

    id_bytes = base64.b64decode("CAAQAw==")
    assert parse_command(golden.ACK) == Command("ack", "CAAQAw==", id_bytes)
    assert parse_command(golden.NACK) == Command("negativeAcknowledge", "CAAQAw==", id_bytes)
    assert parse_command(golden.PERMIT) == Command("permit", permits=100)
    assert parse_command(golden.END_OF_TOPIC_QUERY) == Command("isEndOfTopic")


@pytest.mark.parametrize("reached", [True, False])
def test_the_server_side_answers_end_of_topic_with_a_boolean(reached: bool) -> None:
    from rxstargate._service_rules.commands import end_of_topic_answer

    assert _json(end_of_topic_answer(reached)) == _json(golden.END_OF_TOPIC_ANSWERS[reached])


def test_the_gateway_writes_messages_with_the_fields_of_the_docs_frame() -> None:
    from rxstargate._server_time import parse_time
    from rxstargate.local._gateway._receiving import message_frame

    documented = _json(golden.CONSUMER_MESSAGE_DOCS)
    payload = base64.b64decode(documented["payload"])
    message = _Message(payload, golden.CONSUMER_MESSAGE_PUBLISHED_MILLIS)
    written = _json(message_frame(message, documented["messageId"]))
    del documented["encryptionContext"]  # only for messages the proxy could not decrypt
    assert {k: type(v) for k, v in written.items()} == {k: type(v) for k, v in documented.items()}
    assert {k: v for k, v in written.items() if k != "publishTime"} == {
        k: v for k, v in documented.items() if k != "publishTime"
    }
    assert parse_time(written["publishTime"]) == parse_time(documented["publishTime"])


def test_the_gateway_writes_event_time_and_key_only_when_set() -> None:
    from rxstargate.local._gateway._receiving import message_frame

    plain = _json(message_frame(_Message(b"", 0), "CAAQAw=="))
    assert "eventTime" not in plain
    assert "key" not in plain
    full = _json(message_frame(_Message(b"", 0, event=1635548498967, key="k"), "CAAQAw=="))
    assert (full["eventTime"], full["key"]) == ("2021-10-29T23:01:38.967Z", "k")


@pytest.mark.parametrize(("text", "millis"), golden.TIMES)
def test_the_server_side_parses_pulsar_times(text: str, millis: int) -> None:
    from rxstargate._server_time import parse_time

    assert parse_time(text) == millis


@pytest.mark.parametrize(("text", "millis"), golden.UTC_TEXTS)
def test_the_server_side_formats_times_as_a_utc_jvm(text: str, millis: int) -> None:
    from rxstargate._server_time import format_time

    assert format_time(millis) == text


@pytest.mark.parametrize("text", golden.REFUSED_TIMES)
def test_the_server_side_refuses_event_times_that_java_refuses(text: str) -> None:
    from rxstargate._service_rules.send_frame import SendFrameError, read_send_frame

    with pytest.raises(SendFrameError) as info:
        read_send_frame({"payload": "", "context": "1", "eventTime": text})
    assert (info.value.code, info.value.context) == (7, "1")


@pytest.mark.parametrize(("encoded", "position"), golden.MESSAGE_IDS.items())
def test_the_gateway_reads_message_ids(encoded: str, position: tuple[int, int]) -> None:
    pulsar = pytest.importorskip("pulsar")

    message_id = pulsar.MessageId.deserialize(base64.b64decode(encoded))
    assert (message_id.ledger_id(), message_id.entry_id()) == position


def test_the_gateway_follows_pulsars_name_rule() -> None:
    from rxstargate._service_rules.paths import PathError, parse_path
    from rxstargate._service_rules.vocabulary import is_named_entity

    assert all(is_named_entity(name) for name in golden.NAMED_ENTITIES)
    assert not any(is_named_entity(name) for name in golden.NOT_NAMED_ENTITIES)
    for name in golden.NOT_NAMED_ENTITIES:
        if "/" not in name:
            with pytest.raises(PathError):
                parse_path(f"/ws/v2/producer/persistent/{name}/default/topic")


# --- MemoryPulsar ---------------------------------------------------------------------------------


def test_memory_pulsar_reads_the_docs_send_frame() -> None:
    from rxstargate.testing._wire import decode_send

    context, publication = decode_send(_json(golden.SEND))
    assert context == "1"
    assert (publication.payload, publication.properties) == (
        golden.SEND_PAYLOAD,
        golden.SEND_PROPERTIES,
    )
    assert (publication.key, publication.event_time) == (None, None)


def test_memory_pulsar_writes_messages_with_the_fields_of_the_docs_frame() -> None:
    from rxstargate.testing._wire import message_frame, parse_time

    documented = _json(golden.CONSUMER_MESSAGE_DOCS)
    payload = base64.b64decode(documented["payload"])
    written = _json(
        message_frame(
            documented["messageId"], payload, {}, golden.CONSUMER_MESSAGE_PUBLISHED_MILLIS, 0
        )
    )
    del documented["encryptionContext"]  # only for messages the proxy could not decrypt
    assert {k: type(v) for k, v in written.items()} == {k: type(v) for k, v in documented.items()}
    assert {k: v for k, v in written.items() if k != "publishTime"} == {
        k: v for k, v in documented.items() if k != "publishTime"
    }
    assert parse_time(written["publishTime"]) == parse_time(documented["publishTime"])


def test_memory_pulsar_writes_event_time_and_key_only_when_set() -> None:
    from rxstargate.testing._wire import message_frame

    plain = _json(message_frame("CAAQAw==", b"", {}, 0, 0))
    assert "eventTime" not in plain
    assert "key" not in plain
    full = _json(message_frame("CAAQAw==", b"", {}, 0, 0, event_time=1635548498967, key="k"))
    assert (full["eventTime"], full["key"]) == ("2021-10-29T23:01:38.967Z", "k")


@pytest.mark.parametrize(("encoded", "position"), golden.MESSAGE_IDS.items())
def test_memory_pulsar_finds_the_message_a_docs_id_names(
    encoded: str, position: tuple[int, int]
) -> None:
    from rxstargate.models import MessageId
    from rxstargate.testing._topics import Topic
    from rxstargate.testing._wire import Publication

    ledger, entry = position
    topic = Topic("persistent://public/default/t", ledger)
    for _ in range(entry + 2):
        topic.append(Publication(b"", None, {}, None), 0)
    assert topic.index_of(MessageId(encoded)) == entry
    assert topic.position_after(MessageId(encoded)) == entry + 1  # a reader starts after it
    if MessageId(encoded).fields.batch_size < 0:  # ids of unbatched messages: the same bytes
        assert str(topic.entries[entry].message_id) == encoded


def test_memory_pulsar_follows_pulsars_name_rule() -> None:
    from rxstargate._service_rules.vocabulary import is_named_entity
    from rxstargate.testing._endpoints import Refusal, parse_path

    assert all(is_named_entity(name) for name in golden.NAMED_ENTITIES)
    assert not any(is_named_entity(name) for name in golden.NOT_NAMED_ENTITIES)
    for name in golden.NOT_NAMED_ENTITIES:
        if "/" not in name:
            with pytest.raises(Refusal):
                parse_path(f"/ws/v2/producer/persistent/{name}/default/topic", {})


def test_memory_pulsar_answers_the_docs_frames_on_its_sockets() -> None:
    import rxstargate as rs
    from rxstargate.testing import MemoryPulsar, MemoryTransport

    base = f"{MemoryPulsar.url}/ws/v2/{{}}/persistent/public/default/t"
    with MemoryPulsar() as pulsar:
        producer = pulsar.connect(base.format("producer"), rs.TransportConfig(), "golden")
        assert isinstance(producer, MemoryTransport)
        producer.send(golden.SEND)
        (ack,) = (_json(text) for text in producer.poll())
        assert {k: type(v) for k, v in ack.items()} == {
            k: type(v) for k, v in _json(golden.ACK_OK_2_8).items()
        }
        url = base.format("consumer") + "/sub?subscriptionInitialPosition=Earliest&pullMode=true"
        consumer = pulsar.connect(url, rs.TransportConfig(), "golden")
        assert isinstance(consumer, MemoryTransport)
        consumer.send(golden.PERMIT)
        (message,) = (_json(text) for text in consumer.poll())
        documented = _json(golden.CONSUMER_MESSAGE_DOCS)
        del documented["encryptionContext"]
        assert {k: type(v) for k, v in message.items()} == {
            k: type(v) for k, v in documented.items()
        } | {"properties": dict}
        assert base64.b64decode(message["payload"]) == golden.SEND_PAYLOAD
        assert message["properties"] == golden.SEND_PROPERTIES
        consumer.send(golden.END_OF_TOPIC_QUERY)
        assert consumer.poll() == [golden.END_OF_TOPIC_ANSWERS[False]]
        consumer.send(golden.NACK.replace("CAAQAw==", message["messageId"]))
        consumer.send(golden.ACK.replace("CAAQAw==", message["messageId"]))
        assert pulsar.backlog("t", "sub") == 0


# --- the client ---------------------------------------------------------------------------------


def test_the_client_decodes_the_docs_consumer_message() -> None:
    frame = decode_message(golden.CONSUMER_MESSAGE_DOCS)
    documented = _json(golden.CONSUMER_MESSAGE_DOCS)
    assert frame.message_id == "CAMQADAA"
    assert frame.payload == base64.b64decode(documented["payload"])
    assert (frame.properties, frame.redelivery_count, frame.key, frame.event_time) == (
        {},
        0,
        None,
        None,
    )
    published = to_epoch_millis(parse_pulsar_time(frame.publish_time))
    assert published == golden.CONSUMER_MESSAGE_PUBLISHED_MILLIS


def test_the_client_decodes_the_docs_reader_message_with_a_legacy_time() -> None:
    frame = decode_message(golden.READER_MESSAGE_DOCS)
    assert frame.payload == golden.SEND_PAYLOAD
    assert frame.properties == golden.SEND_PROPERTIES
    assert frame.redelivery_count == 4
    published = to_epoch_millis(parse_pulsar_time(frame.publish_time))
    assert published == golden.LEGACY_PUBLISHED_MILLIS


@pytest.mark.parametrize(
    ("text", "result", "message_id", "context", "error"),
    [
        (golden.ACK_OK_DOCS, "ok", "CAAQAw==", "1", None),
        (golden.ACK_OK_2_8, "ok", "CPEKEINF", "1", None),
        (golden.ACK_ERROR_DOCS, "send-error:3", None, "1", "Failed to de-serialize from JSON"),
    ],
)
def test_the_client_decodes_the_docs_acks(
    text: str, result: str, message_id: str | None, context: str | None, error: str | None
) -> None:
    ack = decode_producer_ack(text)
    assert (ack.result, ack.message_id, ack.context, ack.error_msg) == (
        result,
        message_id,
        context,
        error,
    )


def test_the_client_writes_the_docs_frames() -> None:
    sent = encode_send(golden.SEND_PAYLOAD, "1", properties=golden.SEND_PROPERTIES)
    assert _json(sent) == _json(golden.SEND)
    assert _json(encode_ack("CAAQAw==")) == _json(golden.ACK)
    assert _json(encode_nack("CAAQAw==")) == _json(golden.NACK)
    assert _json(encode_permit(100)) == _json(golden.PERMIT)


@pytest.mark.parametrize(("text", "millis"), golden.TIMES)
def test_the_client_parses_pulsar_times(text: str, millis: int) -> None:
    assert to_epoch_millis(parse_pulsar_time(text)) == millis


@pytest.mark.parametrize(("text", "millis"), golden.UTC_TEXTS)
def test_the_client_formats_times_as_a_utc_jvm(text: str, millis: int) -> None:
    assert format_pulsar_time(millis) == text


def test_the_client_formats_the_docs_time_in_its_zone() -> None:
    pacific = timezone(timedelta(hours=-7))
    text = format_pulsar_time(golden.CONSUMER_MESSAGE_PUBLISHED_MILLIS, pacific)
    assert text == _json(golden.CONSUMER_MESSAGE_DOCS)["publishTime"]
    assert parse_pulsar_time(text) == datetime(2021, 10, 29, 23, 1, 38, 967000, tzinfo=UTC)


@pytest.mark.parametrize(("encoded", "position"), golden.MESSAGE_IDS.items())
def test_the_client_reads_message_ids(encoded: str, position: tuple[int, int]) -> None:
    fields = decode_message_id(base64.b64decode(encoded))
    assert (fields.ledger_id, fields.entry_id) == position


@pytest.mark.parametrize("name", golden.NAMED_ENTITIES)
def test_the_client_accepts_pulsars_names(name: str) -> None:
    assert TopicName.parse(f"persistent://{name}/{name}/topic").tenant == name


@pytest.mark.parametrize("name", golden.NOT_NAMED_ENTITIES)
def test_the_client_refuses_names_pulsar_refuses(name: str) -> None:
    with pytest.raises(InvalidTopicNameError):
        TopicName.parse(f"persistent://{name}/default/topic")
    with pytest.raises(InvalidTopicNameError):
        TopicName.parse(f"persistent://public/{name}/topic")


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ('{"type": "permit", "permitMessages": 2.9}', ("permit", 2)),  # Jackson truncates
        ('{"type": "permit", "permitMessages": "12"}', ("permit", 12)),  # and converts text
        ('{"type": "permit", "permitMessages": true}', "Cannot coerce boolean"),
        ('{"type": "permit", "permitMessages": 3000000000.5}', "out of range of int"),
        ('{"type": "permit", "permitMessages": "x"}', "from String 'x'"),
        ('{"type": "permit", "permitMessages": [1]}', "`java.lang.Integer`"),
        ('{"type": true, "messageId": "CAAQAw=="}', ("ack", 0)),  # "true": unknown, an ack
        ('{"type": ["ack"], "messageId": "CAAQAw=="}', "for field 'type'"),
    ],
)
def test_the_server_side_maps_command_fields_as_jackson_does(
    text: str, outcome: tuple[str, int] | str
) -> None:
    """The gateway and MemoryPulsar read commands with these rules: a result or Pulsar's error."""
    from rxstargate._service_rules.commands import CommandError, parse_command

    if isinstance(outcome, str):
        with pytest.raises(CommandError, match=re.escape(outcome)):
            parse_command(text)
    else:
        command = parse_command(text)
        assert (command.kind, command.permits) == outcome


@pytest.mark.parametrize(
    "frame",
    [
        {"payload": "eA==", "context": 5, "key": 7, "properties": {"a": 1, "b": None}},
        {"payload": "eA==", "context": "c", "properties": ["a"]},
        {"payload": "eA==", "context": "c", "deliverAt": "12", "deliverAfterMs": 2.0},
        {"payload": "eA==", "context": "c", "deliverAfterMs": "soon"},
        {"payload": "eA==", "context": "c", "replicationClusters": "x"},
        {"payload": "eA==", "context": "c", "eventTime": 17},
        {"payload": "eA==", "context": "c", "eventTime": "1970-01-01T00:00:00Z"},
        {"payload": "eA==", "context": "c", "eventTime": "yesterday"},
        {"payload": "not base64!", "context": "c"},
        {"context": [1]},
        ["payload"],
    ],
)
def test_memory_pulsar_and_the_gateway_read_send_frames_alike(frame: Any) -> None:
    """Both read a send frame with the same rules: the same fields, or the same error."""
    pytest.importorskip("pulsar")
    from rxstargate.local._gateway import _producer as gateway
    from rxstargate.testing import _wire as memory

    def outcome(decode: Any) -> tuple[Any, ...]:
        try:
            return ("read", *decode(frame))
        except (memory.FrameError, memory.HandlerThrows) as exc:
            code, context = getattr(exc, "code", None), getattr(exc, "context", None)
            return (type(exc).__name__, str(exc), code, context)

    gateway_outcome = outcome(gateway.decode_send)
    memory_outcome = outcome(memory.decode_send)
    if gateway_outcome[0] == "read":
        _, context, payload, kwargs = gateway_outcome
        _, memory_context, publication = memory_outcome
        assert (context, payload) == (memory_context, publication.payload)
        assert kwargs.get("partition_key") == publication.key
        assert kwargs.get("properties", {}) == publication.properties
        assert kwargs.get("event_timestamp") == publication.event_time
    else:
        assert gateway_outcome == memory_outcome
