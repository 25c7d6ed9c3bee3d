"""``rxstargate tail``: positions, --exit, --count, filters, output, Ctrl-C.

On MemoryPulsar; the command in a child process runs against local Pulsar.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest

import rxstargate as rs
from rxstargate.cli import _tail
from tests.conftest import PulsarEndpoint
from tests.test_cli import run

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

Send = Callable[..., list[rs.MessageId]]


@pytest.fixture
def send(endpoint: PulsarEndpoint, topic_name: str) -> Send:
    """Store messages on the test's topic; returns their ids."""

    def send(*messages: Any) -> list[rs.MessageId]:
        with rs.Client(endpoint.ws_url) as client:
            producer = client.topic(topic_name).producer()
            acks = [producer.send_async(message).result(20) for message in messages]
            producer.close()
        return [ack.message_id for ack in acks if ack.message_id is not None]

    return send


@pytest.fixture
def last_id_is(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], None]:
    """Make topic.last_message_id() answer an id, or raise an error, whatever the server does."""

    def answer(value: Any) -> None:
        def last_message_id(self: rs.Topic) -> rs.MessageId | None:
            if isinstance(value, Exception):
                raise value
            return value  # type: ignore[no-any-return]

        monkeypatch.setattr(rs.Topic, "last_message_id", last_message_id)

    return answer


@pytest.fixture
def silence_after(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Once the tail was delivered N messages, its clock skips the --idle seconds of silence
    that would follow (the tail's clock only; the silence still has to be seen to end it)."""

    def arrange(count: int) -> None:
        skipped = 0.0
        delivered = 0
        on_next = _tail._Tail.on_next

        def counted(self: _tail._Tail, message: rs.Message[Any]) -> None:
            nonlocal delivered, skipped
            on_next(self, message)
            delivered += 1
            if delivered == count:
                skipped = self._idle

        clock = SimpleNamespace(monotonic=lambda: time.monotonic() + skipped)
        monkeypatch.setattr(_tail, "time", clock)
        monkeypatch.setattr(_tail._Tail, "on_next", counted)

    return arrange


def test_tail_prints_json_lines_with_every_field(
    capsys: pytest.CaptureFixture[str], endpoint: PulsarEndpoint, topic_name: str, send: Send
) -> None:
    ids = send(
        rs.OutgoingMessage(b"caf\xc3\xa9", key="k1", properties={"region": "eu"}),
        rs.OutgoingMessage(b"\xff\x00", event_time=datetime.fromisoformat("2024-05-01T12:00Z")),
    )
    result = run(
        capsys, "tail", topic_name, "--url", endpoint.ws_url, "-o", "earliest", "-c", "2", "-J"
    )
    assert result.status == 0, result.err
    text, binary = result.records
    assert text["topic"] == binary["topic"] == topic_name
    assert [text["id"], binary["id"]] == [str(i) for i in ids]
    assert (text["payload"], text["payload_encoding"]) == ("café", "utf-8")
    assert (binary["payload"], binary["payload_encoding"]) == ("/wA=", "base64")
    assert (text["key"], text["properties"], text["event_time"]) == ("k1", {"region": "eu"}, None)
    assert binary["key"] is None and binary["properties"] == {}
    assert datetime.fromisoformat(binary["event_time"]) == datetime.fromisoformat(
        "2024-05-01T12:00Z"
    )
    assert datetime.fromisoformat(text["publish_time"]).tzinfo is not None
    assert text["redelivery_count"] == 0


def test_tail_prints_a_kcat_style_format(
    capsys: pytest.CaptureFixture[str], endpoint: PulsarEndpoint, topic_name: str, send: Send
) -> None:
    (first,) = send(rs.OutgoingMessage(b"apple", key="k", properties={"a": "1", "b": "2"}))
    fmt = r"%k %s|%t|%i|%h|%T|100%%\t."
    result = run(
        capsys, "tail", topic_name, "--url", endpoint.ws_url, "-o", "earliest", "-c", "1", "-f", fmt
    )
    assert result.status == 0, result.err
    fields = result.out.removesuffix("\n").split("|")
    assert fields[:4] == ["k apple", topic_name, str(first), "a=1,b=2"]
    assert abs(int(fields[4]) / 1000 - time.time()) < 120
    assert fields[5] == "100%\t."


def test_tail_starts_after_a_message_id_and_stops_at_count(
    capsys: pytest.CaptureFixture[str], endpoint: PulsarEndpoint, topic_name: str, send: Send
) -> None:
    ids = send(b"m1", b"m2", b"m3", b"m4")
    result = run(capsys, "tail", topic_name, "--url", endpoint.ws_url, "-o", str(ids[0]), "-c", "2")
    assert result.status == 0, result.err
    assert result.lines == ["m2", "m3"]


def test_exit_prints_exactly_the_backlog(
    capsys: pytest.CaptureFixture[str], endpoint: PulsarEndpoint, topic_name: str, send: Send
) -> None:
    send(*[f"m{i}".encode() for i in range(5)])
    result = run(capsys, "tail", topic_name, "--url", endpoint.ws_url, "-o", "earliest", "--exit")
    assert result.status == 0, result.err
    assert result.lines == [f"m{i}" for i in range(5)]
    # Where the server does not serve lastMessageId, one line says how the end is found.
    assert len(result.err.splitlines()) <= 1 and "Traceback" not in result.err


def test_exit_stops_at_the_end_the_topic_had_when_tail_began(
    capsys: pytest.CaptureFixture[str],
    endpoint: PulsarEndpoint,
    topic_name: str,
    send: Send,
    last_id_is: Callable[[Any], None],
) -> None:
    ids = send(b"m1", b"m2", b"m3")
    last_id_is(ids[1])  # as if m3 came after tail asked where the topic ends
    started = time.monotonic()
    result = run(
        capsys, "tail", topic_name, "--url", endpoint.ws_url, "-o", "earliest", "-e", "--idle", "60"
    )
    assert (result.status, result.lines, result.err) == (0, ["m1", "m2"], "")
    assert time.monotonic() - started < 10  # stopped at the id, never waited for silence


def test_exit_falls_back_to_silence_when_the_end_cannot_be_asked_for(
    capsys: pytest.CaptureFixture[str],
    endpoint: PulsarEndpoint,
    topic_name: str,
    send: Send,
    last_id_is: Callable[[Any], None],
    silence_after: Callable[[int], None],
) -> None:
    send(b"m1", b"m2")
    last_id_is(rs.AuthorizationError(403, "Not authorized"))
    silence_after(2)
    result = run(capsys, "tail", topic_name, "--url", endpoint.ws_url, "-o", "earliest", "-e")
    assert (result.status, result.lines) == (0, ["m1", "m2"])
    warning = result.error_line()
    assert "HTTP 403" in warning and "1 s without a message" in warning


def test_exit_with_nothing_to_read_returns_at_once(
    capsys: pytest.CaptureFixture[str], endpoint: PulsarEndpoint, topic_name: str, send: Send
) -> None:
    send(b"old")
    result = run(capsys, "tail", topic_name, "--url", endpoint.ws_url, "--exit")  # from latest
    assert (result.status, result.out, result.err) == (0, "", "")


@pytest.mark.parametrize(
    "start",
    [[], ["-o", "earliest"], ["-n", "3"], ["-s", "audit", "-o", "earliest"]],
    ids=["latest", "earliest", "last-n", "subscription"],
)
def test_exit_on_a_topic_never_written_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str], endpoint: PulsarEndpoint, topic_name: str, start: list[str]
) -> None:
    result = run(capsys, "tail", topic_name, "--url", endpoint.ws_url, *start, "-e")
    assert (result.status, result.out) == (1, "")
    assert result.error_line() == (
        f"rxstargate: no messages in {topic_name}: it was never written (or keeps none)"
    )


def test_last_n_prints_only_the_last_messages(
    capsys: pytest.CaptureFixture[str],
    endpoint: PulsarEndpoint,
    topic_name: str,
    send: Send,
    last_id_is: Callable[[Any], None],
) -> None:
    ids = send(*[f"m{i}".encode() for i in range(6)])
    last_id_is(ids[-1])
    for option in (["-o", "-2"], ["--last", "2"]):
        result = run(capsys, "tail", topic_name, "--url", endpoint.ws_url, *option, "-e")
        assert (result.status, result.lines, result.err) == (0, ["m4", "m5"], "")
    result = run(capsys, "tail", topic_name, "--url", endpoint.ws_url, "--last", "10", "-e")
    assert result.lines == [f"m{i}" for i in range(6)]


def test_last_n_reads_from_the_earliest_when_the_end_cannot_be_asked_for(
    capsys: pytest.CaptureFixture[str],
    endpoint: PulsarEndpoint,
    topic_name: str,
    send: Send,
    last_id_is: Callable[[Any], None],
    silence_after: Callable[[int], None],
) -> None:
    send(*[f"m{i}".encode() for i in range(6)])
    last_id_is(rs.TopicNotFoundError(404, "Not Found"))
    silence_after(6)
    result = run(capsys, "tail", topic_name, "--url", endpoint.ws_url, "-o", "-2", "-e")
    assert (result.status, result.lines) == (0, ["m4", "m5"])
    assert "HTTP 404" in result.error_line()


def test_filters_by_key_and_properties(
    capsys: pytest.CaptureFixture[str], endpoint: PulsarEndpoint, topic_name: str, send: Send
) -> None:
    send(
        rs.OutgoingMessage(b"1", key="alice", properties={"region": "eu", "tier": "gold"}),
        rs.OutgoingMessage(b"2", key="bob", properties={"region": "eu", "tier": "gold"}),
        rs.OutgoingMessage(b"3", key="alice", properties={"region": "us", "tier": "gold"}),
        rs.OutgoingMessage(b"4", key="alice"),
        rs.OutgoingMessage(b"5", key="alice", properties={"region": "eu", "tier": "gold"}),
    )
    base = ["tail", topic_name, "--url", endpoint.ws_url, "-o", "earliest", "-c", "2"]
    assert run(capsys, *base, "-k", "alice", "-p", "region=eu").lines == ["1", "5"]
    assert run(capsys, *base, "-p", "region=eu", "-p", "tier=gold").lines == ["1", "2"]


def test_a_subscription_consumes_and_acks(
    capsys: pytest.CaptureFixture[str], endpoint: PulsarEndpoint, topic_name: str, send: Send
) -> None:
    send(b"a", b"b")
    consume = ["tail", topic_name, "--url", endpoint.ws_url, "-s", "audit", "-o", "earliest"]
    assert run(capsys, *consume, "-c", "2").lines == ["a", "b"]
    send(b"sentinel")
    assert run(capsys, *consume, "-c", "1").lines == ["sentinel"]  # a and b were acked


@pytest.mark.integration  # runs the command in a child process
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_tail_cleanly_and_closes_its_socket(
    capsys: pytest.CaptureFixture[str],
    endpoint: PulsarEndpoint,
    topic_name: str,
    send: Send,
    stop: signal.Signals,
) -> None:
    send(b"first")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rxstargate.cli",
            "tail",
            topic_name,
            "-s",
            "held",
            "-o",
            "earliest",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "RXSTARGATE_URL": endpoint.ws_url, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"first\n"  # following the topic now
        process.send_signal(stop)  # SIGTERM (kill, systemd, a container's stop) as Ctrl-C
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert (process.returncode, out, err) == (0, b"", b"")
    send(b"sentinel")  # the Exclusive subscription is free again, and "first" was acked
    consume = ["tail", topic_name, "--url", endpoint.ws_url, "-s", "held", "-c", "1"]
    assert run(capsys, *consume).lines == ["sentinel"]
