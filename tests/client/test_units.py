"""Unit tests of the client machinery: options, frames, credit, backoff, exports. No sockets."""

from __future__ import annotations

import base64
import doctest
import importlib
import itertools
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

import rxstargate as rs
from rxstargate import _frames, options
from rxstargate._config import TransportConfig, redact_url
from rxstargate._flow import Credit
from rxstargate._reconnect import Backoff

# -- options --------------------------------------------------------------------------------


def test_producer_options_become_pulsar_query_parameters() -> None:
    query = options.producer_query(
        {
            "send_timeout_millis": 0,
            "batching_enabled": True,
            "batching_max_messages": 10,
            "max_pending_messages": 5,
            "batching_max_publish_delay": 2,
            "message_routing_mode": "RoundRobinPartition",
            "compression_type": rs.CompressionType.ZSTD,
            "producer_name": "p1",
            "initial_sequence_id": 7,
            "hashing_scheme": "Murmur3_32Hash",
        }
    )
    assert query == {
        "sendTimeoutMillis": "0",
        "batchingEnabled": "true",
        "batchingMaxMessages": "10",
        "maxPendingMessages": "5",
        "batchingMaxPublishDelay": "2",
        "messageRoutingMode": "RoundRobinPartition",
        "compressionType": "ZSTD",
        "producerName": "p1",
        "initialSequenceId": "7",
        "hashingScheme": "Murmur3_32Hash",
    }


def test_consumer_options_become_pulsar_query_parameters() -> None:
    query = options.consumer_query(
        {
            "ack_timeout_millis": 1000,
            "negative_ack_redelivery_delay": 0,
            "dead_letter_topic": "dlq",
            "max_redeliver_count": 3,
            "receiver_queue_size": 1000,
            "consumer_name": "c",
            "priority_level": 1,
            "subscription_mode": "NonDurable",
            "subscription_initial_position": rs.InitialPosition.EARLIEST,
        }
    )
    assert query["deadLetterTopic"] == "dlq"
    assert query["subscriptionInitialPosition"] == "Earliest"
    assert query["negativeAckRedeliveryDelay"] == "0"


@pytest.mark.parametrize(
    ("kind", "option", "value"),
    [
        ("producer", "send_timeout_milis", 1),
        ("producer", "send_timeout_millis", -1),
        ("producer", "send_timeout_millis", "10"),
        ("producer", "batching_enabled", "yes"),
        ("producer", "compression_type", "lz4"),
        ("producer", "batching_max_publish_delay", 0),
        ("producer", "producer_name", " "),
        ("consumer", "ack_timeout_millis", 999),
        ("consumer", "receiver_queue_size", 1001),
        ("consumer", "priority_level", -1),
        ("consumer", "subscription_mode", "durable"),
        ("reader", "ack_timeout_millis", 1000),
    ],
)
def test_a_bad_option_is_a_value_error_naming_it(kind: str, option: str, value: Any) -> None:
    query = getattr(options, f"{kind}_query")
    with pytest.raises(rs.InvalidOptionError) as caught:
        query({option: value})
    assert isinstance(caught.value, ValueError)
    assert option in str(caught.value)
    assert option in caught.value.messages


def test_enums_carry_the_wire_strings() -> None:
    assert rs.SubscriptionType.KEY_SHARED == "Key_Shared"
    assert rs.SubscriptionMode.NON_DURABLE == "NonDurable"
    assert rs.CompressionType.LZ4 == "LZ4"


# -- frames ---------------------------------------------------------------------------------


def _message(**changes: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "messageId": "CAAQAw==",
        "payload": base64.b64encode(b"hi").decode(),
        "properties": {"a": "1"},
        "publishTime": "2021-10-29T16:01:38.967-07:00",
        "redeliveryCount": 0,
    }
    frame.update(changes)
    return {k: v for k, v in frame.items() if v is not _DROP}


_DROP = object()


def test_a_message_frame_decodes_with_unknown_keys_ignored() -> None:
    frame = _frames.decode_message(json.dumps(_message(key="k", newField={"x": 1})))
    assert (frame.payload, frame.key, frame.properties) == (b"hi", "k", {"a": "1"})


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1]",
        json.dumps(_message(messageId=_DROP)),
        json.dumps(_message(messageId="")),
        json.dumps(_message(payload="***")),
        json.dumps(_message(payload="aGk")),  # missing padding: Java refuses it too
        json.dumps(_message(properties={"a": 1})),
        json.dumps(_message(redeliveryCount="1")),
        json.dumps(_message(publishTime=_DROP)),
        json.dumps(_message(key=5)),
    ],
)
def test_a_malformed_message_frame_is_a_protocol_error(text: str) -> None:
    with pytest.raises(rs.ProtocolError):
        _frames.decode_message(text)


_values = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=8),
    st.booleans(),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    st.sampled_from(["aGk=", "", "CAAQAw==", "***", "2021-10-29T16:01:38Z"]),
)
_frames_strategy = st.dictionaries(
    st.sampled_from(
        [
            "messageId",
            "payload",
            "properties",
            "publishTime",
            "redeliveryCount",
            "key",
            "eventTime",
            "extra",
        ]
    ),
    _values,
)


# Made once: building a marshmallow schema costs more than loading a frame with it.
_MESSAGE_SCHEMA = _frames.ConsumerMessageSchema()
_ACK_SCHEMA = _frames.ProducerAckSchema()

# The pure path always; msgspec's codec (the speedups extra) too where it is installed.
_CODECS = [None] if _frames.msgspec_codec() is None else [None, _frames.msgspec_codec()]
_each_codec = pytest.mark.parametrize(
    "codec", _CODECS, ids=lambda codec: "pure" if codec is None else "msgspec"
)


@_each_codec
@given(_frames_strategy)
def test_the_fast_message_decoder_accepts_exactly_what_the_schema_accepts(
    codec: _frames.Accelerator | None, data: dict[str, Any]
) -> None:
    try:
        expected: dict[str, Any] | None = _MESSAGE_SCHEMA.load(data)
    except ValidationError:
        expected = None
    previous = _frames.use_accelerator(codec)
    try:
        frame: _frames.MessageFrame | None = _frames.decode_message(json.dumps(data))
    except rs.ProtocolError:
        frame = None
    finally:
        _frames.use_accelerator(previous)
    if expected is None:
        assert frame is None
    else:
        assert frame is not None
        assert frame.payload == expected["payload"]
        assert frame.message_id == expected["messageId"]
        assert frame.properties == expected["properties"]
        assert frame.redelivery_count == expected["redeliveryCount"]


_ACK_KEYS = ["result", "messageId", "context", "errorMsg", "errorCode", "schemaVersion", "x"]


@_each_codec
@given(st.dictionaries(st.sampled_from(_ACK_KEYS), _values))
def test_the_fast_ack_decoder_accepts_exactly_what_the_schema_accepts(
    codec: _frames.Accelerator | None, data: dict[str, Any]
) -> None:
    try:
        _ACK_SCHEMA.load(data)
        valid = True
    except ValidationError:
        valid = False
    previous = _frames.use_accelerator(codec)
    try:
        _frames.decode_producer_ack(json.dumps(data))
        decoded = True
    except rs.ProtocolError:
        decoded = False
    finally:
        _frames.use_accelerator(previous)
    assert valid == decoded


def test_outgoing_frames_match_the_wire_protocol() -> None:
    frame = json.loads(
        _frames.encode_send(
            b"\x00\xff",
            "3",
            key="k",
            properties={"p": "v"},
            event_time="2024-01-01T00:00:00Z",
            deliver_after_ms=5,
        )
    )
    assert frame == {
        "payload": "AP8=",
        "context": "3",
        "key": "k",
        "properties": {"p": "v"},
        "eventTime": "2024-01-01T00:00:00Z",
        "deliverAfterMs": 5,
    }
    assert json.loads(_frames.encode_nack("a+/=")) == {
        "type": "negativeAcknowledge",
        "messageId": "a+/=",
    }
    assert json.loads(_frames.encode_permit(7)) == {"type": "permit", "permitMessages": 7}


# -- credit ---------------------------------------------------------------------------------


# Made once: building a marshmallow schema costs more than loading a frame with it.
_MESSAGE_SCHEMA = _frames.ConsumerMessageSchema()
_ACK_SCHEMA = _frames.ProducerAckSchema()


@given(st.integers(1, 50), st.lists(st.booleans(), max_size=400), st.integers(0, 2**32))
def test_credit_never_exceeds_the_window_and_never_stalls(
    window: int, steps: list[bool], seed: int
) -> None:
    credit = Credit(window)
    server = credit.initial()  # what the server may still send
    held = 0
    for deliver in steps:
        if deliver and server > 0:
            server -= 1
            held += 1
            server += credit.delivered()
        elif held:
            held -= 1
            server += credit.settled()
        assert held + server <= window
        assert held == credit.unsettled
        # never stalled: if the pipeline holds nothing back, the server may send again
        assert server > 0 or held > 0


def test_credit_is_batched() -> None:
    credit = Credit(100, batch=10)
    credit.initial()
    for _ in range(50):
        credit.delivered()
    grants = [credit.settled() for _ in range(20)]
    assert grants == [0] * 9 + [10] + [0] * 9 + [10]


# -- backoff --------------------------------------------------------------------------------


def test_backoff_grows_to_its_cap_with_jitter_and_gives_up() -> None:
    policy = Backoff(initial=0.1, factor=2, cap=1.0, jitter=0.5, give_up_after=5.0)
    delays = list(policy.delays(random.Random(1)))
    assert all(0.05 <= d <= 1.0 for d in delays)
    assert sum(delays) <= 5.0
    assert max(delays) > 0.5
    endless = list(itertools.islice(Backoff(give_up_after=None, jitter=0).delays(), 2000))
    assert endless[-1] == 10.0


def test_a_bad_backoff_is_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(initial=0)


# -- secrets and exports --------------------------------------------------------------------


def test_tokens_never_show_in_reprs_or_urls() -> None:
    assert "abc" not in repr(TransportConfig(token="abc"))
    assert "abc" not in redact_url("ws://h/ws?token=abc")
    assert "abc" not in repr(rs.Client("ws://h:1", token="abc"))


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in dir(rs) if not name.startswith("_")}
    modules = {
        "aio",
        "cli",
        "demo",
        "client",
        "display",
        "live",
        "notebook",
        "exceptions",
        "local",
        "models",
        "operators",
        "options",
        "pipeline",
        "service",
        "sinks",
        "streams",
        "testing",
    }
    assert rs.__all__ == sorted(rs.__all__)
    assert set(rs.__all__) == public - modules


def test_client_refuses_a_non_websocket_url_and_a_bad_topic() -> None:
    with pytest.raises(rs.ConfigurationError):
        rs.Client("http://h:1")
    with rs.Client("ws://h:1") as client:
        assert str(client.topic("orders").name) == "persistent://public/default/orders"
        with pytest.raises(ValueError):
            client.topic("a/b")
        with pytest.raises(rs.ConfigurationError):
            client.topic("t").observe("s", subscription_type="Exclusiv")
        with pytest.raises(rs.ConfigurationError):
            client.topic("t").observe(start="middle")


def test_only_the_transport_imports_websocket_client() -> None:
    package = Path(rs.__file__).parent
    importers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if re.search(r"^\s*(import websocket\b|from websocket\b)", path.read_text(), re.M)
    )
    assert importers == ["_transport.py"]


@pytest.mark.parametrize(
    "module",
    ["options", "_frames", "_flow", "_reconnect", "_config", "_wsframes", "_outgoing", "models"],
)
def test_docstring_examples_run(module: str) -> None:
    imported = importlib.import_module(f"rxstargate.{module}")
    failures, _ = doctest.testmod(imported, optionflags=doctest.ELLIPSIS)
    assert failures == 0
