"""The v3 multi-topic consumer: a list or a pattern of topics on one socket, one window.

Local Pulsar names each message's topic in its frame (``"topic"``), an extension of Pulsar's
frames that rxstargate's client reads as ``Message.topic``.
"""

from __future__ import annotations

import base64
import re
import threading
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import websocket

import rxstargate as rs

pytestmark = pytest.mark.integration

WAIT = 20.0


def _v3(raw: Any, subscription: str, **params: Any) -> str:
    params.setdefault("subscriptionInitialPosition", "Earliest")
    return f"{raw.ws_url}/ws/v3/consumer/{quote(subscription, safe='')}?{urlencode(params)}"


def _publish(raw: Any, topic: str, count: int) -> dict[str, bytes]:
    """``count`` messages ``<topic>:<i>``; returns their ids (from the producer acks)."""
    payloads = [f"{topic}:{i}".encode() for i in range(count)]
    acks = raw.produce(raw.producer(topic), payloads)
    return {ack["messageId"]: payload for ack, payload in zip(acks, payloads, strict=True)}


def _payload(frame: dict[str, Any]) -> bytes:
    return base64.b64decode(frame["payload"])


def _frames(raw: Any, sock: websocket.WebSocket, count: int) -> list[dict[str, Any]]:
    return [raw.recv(sock) for _ in range(count)]


def test_a_list_delivers_both_topics_each_frame_naming_its_own(raw: Any, topic_name: str) -> None:
    first, second = f"{topic_name}-a", f"{topic_name}-b"
    sent = _publish(raw, first, 4) | _publish(raw, second, 4)
    sock = raw.connect(_v3(raw, "sub", topics=f"{first},{second}"))
    frames = _frames(raw, sock, 8)
    assert {frame["messageId"]: _payload(frame) for frame in frames} == sent
    for frame in frames:  # "<topic>:<i>" was published to <topic>
        assert _payload(frame).decode().rsplit(":", 1)[0] == frame["topic"]
    assert {frame["topic"] for frame in frames} == {first, second}
    # Acks reach each message's own topic: ack all but one message of each topic.
    kept = {
        next(f["messageId"] for f in frames if f["topic"] == topic) for topic in (first, second)
    }
    for frame in frames:
        if frame["messageId"] not in kept:
            raw.send(sock, {"messageId": frame["messageId"]})
    sock.close()
    again = raw.connect(_v3(raw, "sub", topics=f"{second},{first}"))
    assert {frame["messageId"] for frame in _frames(raw, again, 2)} == kept
    # Nothing acked comes back: the next frame is a message published now.
    sentinel = _publish(raw, second, 1)
    assert raw.recv(again)["messageId"] in sentinel


def test_a_pattern_reads_the_matching_topics_that_exist(raw: Any, topic_name: str) -> None:
    sent = _publish(raw, f"{topic_name}-a", 2) | _publish(raw, f"{topic_name}-b", 2)
    _publish(raw, f"{topic_name}-other", 2)
    sock = raw.connect(_v3(raw, "sub", topicsPattern=f"{topic_name}-[ab]", pullMode="true"))
    raw.send(sock, {"type": "permit", "permitMessages": 4})
    frames = _frames(raw, sock, 4)
    assert {frame["messageId"]: _payload(frame) for frame in frames} == sent
    assert {frame["topic"] for frame in frames} == {f"{topic_name}-a", f"{topic_name}-b"}
    sentinel = _publish(raw, f"{topic_name}-a", 1)
    raw.send(sock, {"type": "permit", "permitMessages": 1})
    assert raw.recv(sock)["messageId"] in sentinel  # "-other" was not subscribed


@pytest.mark.parametrize(
    ("subscription", "params", "status", "reason"),
    [
        ("sub", {}, 400, "Should set topics or topicsPattern"),
        ("sub", {"topics": "a", "topicsPattern": "a.*"}, 400, "Topics must be null"),
        ("", {"topics": "a"}, 400, "Empty subscription name"),
        ("sub", {"topics": "a,,b"}, 400, "blank topic"),
        ("sub", {"topics": "persistent://pub lic/default/a"}, 400, "Invalid"),
        ("sub", {"topicsPattern": "persistent://public/default/(a"}, 400, "Invalid query"),
        ("sub", {"topics": "a", "ackTimeoutMillis": "5"}, 400, "Ack timeout should be"),
    ],
)
def test_refusals_carry_pulsars_words(
    raw: Any, subscription: str, params: dict[str, str], status: int, reason: str
) -> None:
    url = f"{raw.ws_url}/ws/v3/consumer/{subscription}?{urlencode(params)}"
    refusal = raw.refusal(url)
    assert refusal.status_code == status
    assert reason in (refusal.resp_body or b"").decode()


def test_a_busy_topic_refuses_the_whole_list_and_holds_nothing(raw: Any, topic_name: str) -> None:
    first, second = f"{topic_name}-a", f"{topic_name}-b"
    holder = raw.consumer(first, "sub")  # Exclusive on the first topic
    assert raw.refusal(_v3(raw, "sub", topics=f"{first},{second}")).status_code == 409
    raw.consumer(second, "sub").close()  # the refused socket took nothing on the second
    holder.close()
    both = raw.connect(_v3(raw, "sub", topics=f"{first},{second}"))
    for topic in (first, second):  # now the v3 socket holds the subscription on both
        assert raw.refusal(raw.url("consumer", topic, "sub")).status_code == 409
    both.close()
    raw.consumer(first, "sub")  # and lets both go when it closes
    raw.consumer(second, "sub")


class _Collector:
    """Acks in batches of ``bound`` so the bound is reached and released again and again."""

    def __init__(self, expected: int, bound: int) -> None:
        self.expected = expected
        self.bound = bound
        self.held: list[rs.Message[Any]] = []
        self.most_held = 0
        self.got: list[tuple[str, bytes]] = []
        self.errors: list[Exception] = []
        self.done = threading.Event()

    def on_next(self, message: rs.Message[Any]) -> None:
        self.got.append((str(message.topic), message.payload))
        self.held.append(message)
        self.most_held = max(self.most_held, len(self.held))
        if len(self.held) == self.bound or len(self.got) == self.expected:
            for held in self.held:
                held.ack()
            self.held.clear()
        if len(self.got) >= self.expected:
            self.done.set()

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)
        self.done.set()

    def on_completed(self) -> None:
        self.done.set()


@pytest.mark.parametrize("selection", ["list", "pattern"])
def test_the_client_reads_every_message_of_both_topics_once_with_its_topic(
    pulsar: Any, topic_name: str, selection: str
) -> None:
    first, second = f"{topic_name}-a", f"{topic_name}-b"
    with rs.Client(pulsar.ws_url) as client:
        expected: set[tuple[str, bytes]] = set()
        for topic in (first, second):
            producer = client.topic(topic).producer()
            for i in range(30):
                producer.on_next(f"{topic}:{i}".encode())
                expected.add((topic, f"{topic}:{i}".encode()))
            producer.flush()
        if selection == "list":
            topics = client.topics([first, second])
        else:
            local = topic_name.rsplit("/", 1)[1]  # the client puts it in public/default
            topics = client.topics(re.compile(local + "-[ab]"))
        collector = _Collector(len(expected), bound=7)
        subscription = topics.observe("sub", start="earliest", max_in_flight=7).subscribe(collector)
        try:
            assert collector.done.wait(WAIT), f"{len(collector.got)} of {len(expected)}"
        finally:
            subscription.dispose()
    assert not collector.errors
    assert sorted(collector.got) == sorted(expected)  # each once, with its own topic
    assert collector.most_held == 7  # one bound across both topics, reached, never passed
