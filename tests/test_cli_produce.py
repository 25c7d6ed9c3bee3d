"""``rxstargate produce``: arguments, stdin, files, keys, acks, failures.

On MemoryPulsar; the command in a child process, and a server that goes away, against local
Pulsar.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import rxstargate.cli._produce
from tests.conftest import PulsarEndpoint
from tests.faults import FaultProxy
from tests.test_cli import run

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_produced_messages_come_back_through_tail(
    capsys: pytest.CaptureFixture[str], endpoint: PulsarEndpoint, topic_name: str
) -> None:
    url = ["--url", endpoint.ws_url]
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
    endpoint: PulsarEndpoint,
    topic_name: str,
) -> None:
    lines = [f"user{i % 7}:order {i}" for i in range(300)]
    _stdin(monkeypatch, ("\n".join(lines) + "\n\nno key\r\n").encode())
    sent = run(capsys, "produce", topic_name, "--url", endpoint.ws_url, "-K", ":", "-q")
    assert (sent.status, sent.out, sent.err) == (0, "stored 301 messages\n", "")
    got = run(
        capsys,
        "tail",
        topic_name,
        "--url",
        endpoint.ws_url,
        "-o",
        "earliest",
        "-c",
        "301",
        "-f",
        "%k|%s",
    )
    assert got.lines == [line.replace(":", "|", 1) for line in lines] + ["|no key"]


def test_a_carriage_return_goes_only_before_a_newline(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    endpoint: PulsarEndpoint,
    topic_name: str,
) -> None:
    _stdin(monkeypatch, b"crlf\r\ninner\rcr\r\nlast, no newline\r")
    sent = run(capsys, "produce", topic_name, "--url", endpoint.ws_url, "-q")
    assert (sent.status, sent.out) == (0, "stored 3 messages\n")
    got = run(
        capsys, "tail", topic_name, "--url", endpoint.ws_url, "-o", "earliest", "-c", "3", "-J"
    )
    assert [record["payload"] for record in got.records] == [
        "crlf",
        "inner\rcr",
        "last, no newline\r",  # no line end: the bytes as given
    ]


def test_lines_of_a_file_binary_included(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, endpoint: PulsarEndpoint, topic_name: str
) -> None:
    (tmp_path / "in").write_bytes(b"text\n\xff\xfe\n")
    sent = run(
        capsys, "produce", topic_name, "--url", endpoint.ws_url, "--file", str(tmp_path / "in")
    )
    assert sent.status == 0 and len(sent.lines) == 2, sent.err
    got = run(
        capsys, "tail", topic_name, "--url", endpoint.ws_url, "-o", "earliest", "-c", "2", "-J"
    )
    assert [(r["payload"], r["payload_encoding"]) for r in got.records] == [
        ("text", "utf-8"),
        ("//4=", "base64"),
    ]


def test_a_failed_message_is_reported_and_the_exit_status_is_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, endpoint: PulsarEndpoint, topic_name: str
) -> None:
    (tmp_path / "in").write_bytes(b"small\n" + b"x" * (1024 * 1024 + 1) + b"\nsmall again\n")
    sent = run(
        capsys, "produce", topic_name, "--url", endpoint.ws_url, "--file", str(tmp_path / "in")
    )
    assert sent.status == 1
    assert [line.split(" ")[0] for line in sent.lines] == ["1", "3"]  # the others were stored
    failed, summary = sent.err.splitlines()
    assert failed.startswith("rxstargate: message 2 failed: client-error:payload-too-large")
    assert summary == "rxstargate: 1 of 3 messages failed"


def test_the_url_and_token_come_from_the_environment(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    endpoint: PulsarEndpoint,
    topic_name: str,
) -> None:
    monkeypatch.setenv("RXSTARGATE_URL", endpoint.ws_url)
    monkeypatch.setenv("RXSTARGATE_TOKEN", "any")  # local Pulsar without a token takes any
    sent = run(capsys, "produce", topic_name, "from the environment")
    assert sent.status == 0, sent.err
    [(context, message_id)] = [line.split(" ") for line in sent.lines]  # a lone ack is printed
    got = run(capsys, "tail", topic_name, "-o", "earliest", "-e", "-f", "%i %s")
    assert (context, got.lines) == ("1", [f"{message_id} from the environment"])


@pytest.mark.integration  # runs the command in a child process
def test_a_closed_pipe_on_stdout_stops_printing_quietly_and_every_line_is_sent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, endpoint: PulsarEndpoint, topic_name: str
) -> None:
    (tmp_path / "in").write_bytes(b"".join(b"%d\n" % i for i in range(3000)))
    with (tmp_path / "in").open("rb") as lines:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rxstargate.cli",
                "produce",
                topic_name,
                "--url",
                endpoint.ws_url,
            ],
            stdin=lines,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(b"1 ")  # `| head -1`
        process.stdout.close()
        process.stdout = None
        err = process.communicate(timeout=60)[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert (process.returncode, err) == (0, b"")
    got = run(capsys, "tail", topic_name, "--url", endpoint.ws_url, "-o", "earliest", "-e")
    assert len(got.lines) == 3000


class _Input:
    """Standard input whose reading runs ``hook`` once ``after`` lines were read."""

    def __init__(self, lines: list[bytes], after: int, hook: Callable[[], None]) -> None:
        self.buffer = self._lines(lines, after, hook)

    @staticmethod
    def _lines(lines: list[bytes], after: int, hook: Callable[[], None]) -> Iterator[bytes]:
        for number, line in enumerate(lines):
            if number == after:
                hook()
            yield line

    def isatty(self) -> bool:
        return False


@pytest.mark.integration  # runs the command in a child process
def test_a_server_gone_for_good_is_one_line_with_what_was_stored(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    endpoint: PulsarEndpoint,
    topic_name: str,
) -> None:
    monkeypatch.setattr(rxstargate.cli._produce, "_SEND_TIMEOUT", 0.5)
    monkeypatch.setattr(rxstargate.cli._produce, "_MAX_IN_FLIGHT", 20)
    monkeypatch.setattr(rxstargate.cli._produce, "_AFTER_FAILURE", 0.2)
    port = urlsplit(endpoint.ws_url).port
    assert port
    with FaultProxy(port) as proxy:

        def server_dies() -> None:
            proxy.refuse()
            proxy.reset()

        lines = [b"%d\n" % i for i in range(200)]
        monkeypatch.setattr(sys, "stdin", _Input(lines, 30, server_dies))
        sent = run(capsys, "produce", topic_name, "--url", proxy.ws_url, "-q")
    assert sent.status == 1
    [count] = sent.lines
    stored = int(count.split()[1])
    line = sent.error_line()
    assert f"{stored} of " in line and "no answer" in line, line
    got = run(capsys, "tail", topic_name, "--url", endpoint.ws_url, "-o", "earliest", "-e")
    assert stored <= len(got.lines) <= 30 + 20


def test_a_key_that_is_not_utf8_fails_its_line_only(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    endpoint: PulsarEndpoint,
    topic_name: str,
) -> None:
    _stdin(monkeypatch, b"a:1\n\xe9t\xe9:2\nc:3\n")
    sent = run(capsys, "produce", topic_name, "--url", endpoint.ws_url, "-K", ":")
    assert sent.status == 1
    assert [line.split(" ")[0] for line in sent.lines] == ["1", "3"]
    failed, summary = sent.err.splitlines()
    assert failed.startswith("rxstargate: message 2 failed: its key is not UTF-8")
    assert summary == "rxstargate: 1 of 3 messages failed"
    got = run(
        capsys, "tail", topic_name, "--url", endpoint.ws_url, "-o", "earliest", "-e", "-f", "%k|%s"
    )
    assert got.lines == ["a|1", "c|3"]


def test_a_key_argument_that_is_not_utf8_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], endpoint: PulsarEndpoint, topic_name: str
) -> None:
    key = os.fsdecode(b"\xff")
    result = run(capsys, "produce", topic_name, "hello", "--url", endpoint.ws_url, "-k", key)
    assert result.status == 2
    assert "--key" in result.error_line()


# SIGTERM (kill, a service manager) stops it as Ctrl-C does, rather than cutting the sends.
@pytest.mark.integration  # runs the command in a child process
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_with_input_left_exits_130_after_the_acks(
    endpoint: PulsarEndpoint, topic_name: str, signum: signal.Signals
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "rxstargate.cli", "produce", topic_name, "--url", endpoint.ws_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(b"first\n")
        process.stdin.flush()
        assert process.stdout.readline().startswith(b"1 ")  # sending; stdin still open
        process.send_signal(signum)
        process.wait(30)  # stdin still open: the input is not over
        assert process.stderr is not None
        out, err = process.stdout.read(), process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert process.returncode == 130
    assert out == b""
    assert err.decode().splitlines() == [
        "rxstargate: interrupted: waiting for the acks of what was sent"
    ]
