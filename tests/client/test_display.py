"""Notebook display: messages and acks as escaped HTML tables; peek() leaves nothing behind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import reactivex as rx

import rxstargate as rs
from rxstargate.display import payload_preview


def message(payload: bytes, **extra: Any) -> rs.Message[Any]:
    return rs.Message(
        topic=rs.TopicName.parse("t"),
        payload=payload,
        message_id=rs.MessageId.from_parts(3, 4),
        **extra,
    )


def test_a_message_renders_as_an_escaped_html_row() -> None:
    shown = message(
        b"<script>alert(1)</script>",
        key="k&1",
        properties={"a": "<b>"},
        publish_time=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        redelivery_count=2,
    )._repr_html_()
    assert "<script>" not in shown and "&lt;script&gt;" in shown
    assert "k&amp;1" in shown and "a=&lt;b&gt;" in shown
    assert "2024-01-02T03:04:05+00:00" in shown
    assert "<td>2</td>" in shown
    assert str(rs.MessageId.from_parts(3, 4)) in shown


def test_binary_and_long_payloads_are_previewed_shortly() -> None:
    assert payload_preview(b"\x00\x01\xff").startswith("base64:")
    long = payload_preview("é".encode() * 1000)
    assert len(long) == 80 and long.endswith("…")


def test_acks_and_message_lists_render_as_tables() -> None:
    ack = rs.ProducerAck("7", None, "send-error:8", "queue <full>")
    assert "queue &lt;full&gt;" in ack._repr_html_()
    acks = rs.Acks([ack, rs.ProducerAck("8", rs.MessageId.from_parts(1, 2))])._repr_html_()
    assert acks.count("<tr>") == 3 and "send-error:8" in acks
    table = rs.Messages([message(b"a"), message(b"b")])._repr_html_()
    assert table.count("<tr>") == 3  # the header and two rows
    records = rs.Messages([message(b"a", key="k")]).to_records()
    assert records[0]["text"] == "a" and records[0]["key"] == "k"


@pytest.mark.usefixtures("no_leaked_threads")
def test_peek_returns_the_first_messages_and_leaves_no_stream(
    client: rs.Client, topic_name: str
) -> None:
    topic = client.topic(topic_name)
    rx.from_iterable([str(i).encode() for i in range(30)]).subscribe(topic.producer())
    first = topic.peek(5)
    everything = topic.peek(100, idle=0.5)  # stops at the end of the topic
    assert [m.payload for m in first] == [b"0", b"1", b"2", b"3", b"4"]
    assert len(everything) == 30
    assert client.streams == []
    pytest.importorskip("pandas", reason="to_pandas() needs pandas (notebook extra)")
    frame = everything.to_pandas()
    assert list(frame["text"][:2]) == ["0", "1"]
