"""A settle the socket could not write is reported with its verb, message id and topic."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

import rxstargate as rs
from rxstargate._frames import decode_message
from rxstargate._message_factory import MessageFactory
from rxstargate._receive_state import ConsumerState
from rxstargate._seam import LostCallback
from rxstargate._settler import Settler
from rxstargate.models import TopicName


class QueuingSocket:
    """Keeps every frame sent with its loss callback, as a writer's queue does."""

    def __init__(self) -> None:
        self.queued: list[tuple[str | bytes, LostCallback | None]] = []

    def send(
        self, text: str | bytes, *, urgent: bool = True, on_lost: LostCallback | None = None
    ) -> None:
        self.queued.append((text, on_lost))

    def drop_all(self, reason: str) -> None:
        """Report every queued frame lost, as a dropped connection does."""
        for text, on_lost in self.queued:
            if on_lost is not None:
                on_lost(text, reason)


class Reports:
    def __init__(self) -> None:
        self.errors: list[Exception] = []

    def report(self, error: Exception, log_it: bool = True) -> None:
        self.errors.append(error)


def wire_id(entry: int) -> str:
    return base64.b64encode(b"\x08\x01\x10" + bytes((entry,))).decode()


def message_text(entry: int, topic: str | None = None) -> str:
    fields: dict[str, Any] = {
        "messageId": wire_id(entry),
        "payload": base64.b64encode(b"x").decode(),
        "properties": {},
        "publishTime": "2026-01-01T00:00:00.000Z",
        "redeliveryCount": 0,
    }
    if topic is not None:
        fields["topic"] = topic
    return json.dumps(fields)


def consumer_settler(texts: list[str]) -> tuple[Settler, QueuingSocket, Reports, list[Any]]:
    """A consumer's settler over one socket, with ``texts`` delivered as Messages."""
    state = ConsumerState(100)
    ledger, _ = state.opened(0.0)
    socket, reports = QueuingSocket(), Reports()
    settler = Settler(state, ledger, socket, threading.Lock(), reports)  # type: ignore[arg-type]
    factory = MessageFactory(reports, TopicName.parse("orders"), None)  # type: ignore[arg-type]
    messages = []
    for text in texts:
        frame = decode_message(text)
        message = factory.build(frame, settler)
        assert settler.deliver(message, frame.message_id)
        messages.append(message)
    return settler, socket, reports, messages


def test_lost_acks_and_nacks_are_reported_with_their_verb_id_and_topic_to_both() -> None:
    settler, socket, reports, messages = consumer_settler([message_text(1), message_text(2)])
    told: list[rs.AckError] = []
    settler.ack(messages[0], told.append)
    settler.nack(messages[1], told.append)
    socket.drop_all("the connection dropped")
    topic = TopicName.parse("orders")
    assert [str(error) for error in told] == [
        f"the ack of message {wire_id(1)} on {topic} did not reach the server"
        " (the connection dropped); the broker will redeliver it",
        f"the nack of message {wire_id(2)} on {topic} did not reach the server"
        " (the connection dropped); the broker will redeliver it",
    ]
    assert reports.errors == told  # on client.errors as well, the same errors


def test_a_multi_topic_streams_lost_ack_names_the_topic_of_its_own_message() -> None:
    first = "persistent://public/default/orders-a"
    second = "persistent://public/default/orders-b"
    settler, socket, reports, messages = consumer_settler(
        [message_text(1, first), message_text(2, second), message_text(3, first)]
    )
    for message in messages:
        settler.ack(message)
    socket.drop_all("gone")
    assert [str(error).split(" did not")[0] for error in reports.errors] == [
        f"the ack of message {wire_id(1)} on {first}",
        f"the ack of message {wire_id(2)} on {second}",
        f"the ack of message {wire_id(3)} on {first}",
    ]


def test_acks_of_one_topic_and_one_caller_share_a_single_loss_callback() -> None:
    settler, socket, _reports, messages = consumer_settler([message_text(i) for i in range(5)])
    told: list[rs.AckError] = []
    on_lost = told.append  # bound once, as the acknowledger does
    for message in messages:
        settler.ack(message, on_lost)
    callbacks = {id(on_lost) for text, on_lost in socket.queued if '"messageId"' in str(text)}
    assert len(callbacks) == 1
