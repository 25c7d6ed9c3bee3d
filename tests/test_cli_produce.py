"""``rxstargate produce`` against local Pulsar: arguments, stdin, files, keys, acks, failures."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from tests.conftest import PulsarEndpoint
from tests.test_cli import run

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_leaked_threads")]


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_produced_messages_come_back_through_tail(
    capsys: pytest.CaptureFixture[str], pulsar: PulsarEndpoint, topic_name: str
) -> None:
    url = ["--url", pulsar.ws_url]
    sent = run(capsys, "produce", topic_name, *url, "apple", "banana", "-k", "k", "-p", "a=1")
    assert sent.status == 0, sent.err
    acks = [line.split(" ") for line in sent.lines]
    assert [context for context, _ in acks] == ["1", "2"]
    got = run(capsys, "tail", topic_name, *url, "-o", "earliest", "-c", "2", "-J")
    assert [(r["id"], r["payload"], r["key"], r["properties"]) for r in got.records] == [
        (acks[0][1], "apple", "k", {"a": "1"}),
        (acks[1][1], "banana", "k", {"a": "1"}),
    ]


def test_stdin_lines_with_keys_and_a_count(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    pulsar: PulsarEndpoint,
    topic_name: str,
) -> None:
    lines = [f"user{i % 7}:order {i}" for i in range(300)]
    _stdin(monkeypatch, ("\n".join(lines) + "\n\nno key\r\n").encode())
    sent = run(capsys, "produce", topic_name, "--url", pulsar.ws_url, "-K", ":", "-q")
    assert (sent.status, sent.out, sent.err) == (0, "stored 301 messages\n", "")
    got = run(
        capsys,
        "tail",
        topic_name,
        "--url",
        pulsar.ws_url,
        "-o",
        "earliest",
        "-c",
        "301",
        "-f",
        "%k|%s",
    )
    assert got.lines == [line.replace(":", "|", 1) for line in lines] + ["|no key"]


def test_lines_of_a_file_binary_included(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pulsar: PulsarEndpoint, topic_name: str
) -> None:
    (tmp_path / "in").write_bytes(b"text\n\xff\xfe\n")
    sent = run(
        capsys, "produce", topic_name, "--url", pulsar.ws_url, "--file", str(tmp_path / "in")
    )
    assert sent.status == 0 and len(sent.lines) == 2, sent.err
    got = run(capsys, "tail", topic_name, "--url", pulsar.ws_url, "-o", "earliest", "-c", "2", "-J")
    assert [(r["payload"], r["payload_encoding"]) for r in got.records] == [
        ("text", "utf-8"),
        ("//4=", "base64"),
    ]


def test_a_failed_message_is_reported_and_the_exit_status_is_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pulsar: PulsarEndpoint, topic_name: str
) -> None:
    (tmp_path / "in").write_bytes(b"small\n" + b"x" * (1024 * 1024 + 1) + b"\nsmall again\n")
    sent = run(
        capsys, "produce", topic_name, "--url", pulsar.ws_url, "--file", str(tmp_path / "in")
    )
    assert sent.status == 1
    assert [line.split(" ")[0] for line in sent.lines] == ["1", "3"]  # the others were stored
    failed, summary = sent.err.splitlines()
    assert failed.startswith("rxstargate: message 2 failed: client-error:payload-too-large")
    assert summary == "rxstargate: 1 of 3 messages failed"


def test_the_url_and_token_come_from_the_environment(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    pulsar: PulsarEndpoint,
    topic_name: str,
) -> None:
    monkeypatch.setenv("RXSTARGATE_URL", pulsar.ws_url)
    monkeypatch.setenv("RXSTARGATE_TOKEN", "any")  # local Pulsar without a token takes any
    sent = run(capsys, "produce", topic_name, "from the environment")
    assert sent.status == 0, sent.err
    [(context, message_id)] = [line.split(" ") for line in sent.lines]  # a lone ack is printed
    got = run(capsys, "tail", topic_name, "-o", "earliest", "-e", "-f", "%i %s")
    assert (context, got.lines) == ("1", [f"{message_id} from the environment"])
