"""Expected failures of the client commands: one line on stderr, status 1 (2 for usage)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import rxstargate.cli._common
from tests.test_cli import run, unused_port

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


class Refusing:
    """An HTTP server that refuses every request (WebSocket upgrades included) with ``status``."""

    def __init__(self) -> None:
        self.status = 401
        self.authorizations: list[str | None] = []
        refusing = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                refusing.authorizations.append(self.headers.get("Authorization"))
                body = b"Refused\n(and said so on two lines)"
                self.send_response(refusing.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.01,), name="refusing"
        )

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def refusing() -> Iterator[Refusing]:
    server = Refusing()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    server.thread.join(5)


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RXSTARGATE_URL", raising=False)
    monkeypatch.delenv("RXSTARGATE_TOKEN", raising=False)


@pytest.mark.parametrize("command", [["tail", "t"], ["tail", "t", "-e"], ["produce", "t", "x"]])
def test_without_a_url_and_no_local_pulsar_running_one_line_says_what_to_do(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    default = f"ws://127.0.0.1:{unused_port()}"
    monkeypatch.setattr(rxstargate.cli._common, "DEFAULT_URL", default)
    result = run(capsys, *command)
    assert result.status == 1
    assert result.error_line() == (
        f"rxstargate: no Pulsar WebSocket API at {default}: start one with `rxstargate local`"
        " or pass --url"
    )


@pytest.mark.parametrize(
    ("status", "says"),
    [(401, "the server refused the token: HTTP 401"), (404, "no such topic")],
)
@pytest.mark.parametrize(
    "command",
    [["tail", "t"], ["tail", "t", "-o", "-3"], ["tail", "t", "-e"], ["produce", "t", "x"]],
)
def test_a_refused_handshake_is_one_line_and_the_token_comes_from_the_environment(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    refusing: Refusing,
    command: list[str],
    status: int,
    says: str,
) -> None:
    refusing.status = status
    monkeypatch.setenv("RXSTARGATE_URL", refusing.url)
    monkeypatch.setenv("RXSTARGATE_TOKEN", "from-env")
    result = run(capsys, *command)
    assert result.status == 1
    assert "Traceback" not in result.err
    # One line: no word about the end of the topic, which the refused reader never reaches.
    assert result.error_line().startswith(f"rxstargate: {says}")
    assert set(refusing.authorizations) == {"Bearer from-env"}


def test_tail_exit_from_the_latest_is_one_line_when_the_admin_api_fails(
    capsys: pytest.CaptureFixture[str], refusing: Refusing
) -> None:
    refusing.status = 500
    result = run(capsys, "tail", "t", "-e", "--url", refusing.url)
    assert result.status == 1
    assert "Traceback" not in result.err
    assert "HTTP 500" in result.error_line()


@pytest.mark.parametrize("start", ["not-an-id!", "AAAA", "-0"])
def test_a_bad_start_is_a_usage_error(capsys: pytest.CaptureFixture[str], start: str) -> None:
    result = run(capsys, "tail", "t", "--start", start)
    assert result.status == 2
    assert "--start" in result.error_line()


@pytest.mark.parametrize(
    "argv",
    [
        ["tail", "a/b/c/d"],
        ["tail", "t", "--url", "http://127.0.0.1:8080"],
        ["tail", "t", "--subscription-type", "Shared"],
        ["tail", "t", "-s", "sub", "--last", "3"],
        ["tail", "t", "-f", "%x"],
        ["produce", "t", "x", "--file", "f"],
        ["produce", "t", "x", "--token", "a", "--token-file", "f"],
    ],
)
def test_options_that_do_not_fit_are_one_line_with_status_2(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    result = run(capsys, *argv)
    assert result.status == 2
    assert result.error_line().startswith("rxstargate: ")


def test_an_unreadable_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    port = unused_port()  # never reached: the file is read first
    result = run(
        capsys, "produce", "t", "--url", f"ws://127.0.0.1:{port}", "--file", str(tmp_path / "no")
    )
    assert result.status == 1
    assert "cannot read" in result.error_line()


_DEMO = ["demo", "--messages", "10"]


@pytest.mark.parametrize(
    "command", [["tail", "t"], ["produce", "t", "x"], _DEMO], ids=["tail", "produce", "demo"]
)
def test_nothing_listening_at_the_given_url_is_one_line_for_every_command(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    port = unused_port()
    result = run(capsys, *command, "--url", f"ws://127.0.0.1:{port}")
    assert result.status == 1
    assert f"127.0.0.1:{port}" in result.error_line()


@pytest.mark.parametrize(
    "command",
    [
        ["tail", "t"],
        ["tail", "t", "-e"],
        ["tail", "t", "-o", "earliest", "-e"],
        ["tail", "t", "-n", "3"],
        ["produce", "t", "x"],
        _DEMO,
    ],
    ids=["tail", "tail-e", "tail-earliest-e", "tail-n", "produce", "demo"],
)
def test_an_unreachable_server_is_the_same_line_naming_the_url_given_on_every_path(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    url = f"ws://127.0.0.1:{unused_port()}"
    result = run(capsys, *command, "--url", url)
    assert result.status == 1
    # Not the admin API's http:// URL in urllib's words, nor the endpoint's path and query.
    assert result.error_line() == f"rxstargate: cannot reach {url}: Connection refused"


@pytest.mark.parametrize(
    ("status", "says"),
    [(401, "the server refused the token: HTTP 401"), (404, "no such topic")],
)
def test_the_demo_ends_at_once_with_one_line_when_the_server_refuses(
    capsys: pytest.CaptureFixture[str],
    refusing: Refusing,
    status: int,
    says: str,
) -> None:
    refusing.status = status
    result = run(capsys, *_DEMO, "--url", refusing.url, "--token", "wrong")
    assert result.status == 1
    assert result.error_line().startswith(f"rxstargate: {says}")
    assert result.out == ""
    assert len(refusing.authorizations) == 1  # one refused handshake, not one per order


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("ws://127.0.0.1:notaport", 2),
        ("ws://127.0.0.1:99999", 2),
        ("ws://a b:1", 2),
        ("ws://a%20b:1", None),  # a usage error where Python's HTTP client sees the space
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ["tail", "t"],
        ["tail", "t", "-e", "-o", "earliest"],
        ["tail", "t", "-n", "1", "-e"],
        ["produce", "t", "x"],
        _DEMO,
    ],
    ids=["tail", "tail-e", "tail-n", "produce", "demo"],
)
def test_a_malformed_url_is_one_line_on_every_path(
    capsys: pytest.CaptureFixture[str], command: list[str], url: str, status: int | None
) -> None:
    result = run(capsys, *command, "--url", url)
    assert result.status in ((1, 2) if status is None else (status,)), result.err
    assert result.error_line().startswith("rxstargate: ")


def test_the_admin_api_cannot_raise_a_raw_invalid_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import http.client
    import urllib.request

    def urlopen(*args: object, **kwargs: object) -> None:  # what http.client says of such URLs
        raise http.client.InvalidURL("URL can't contain control characters")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    for argv in (
        ["tail", "t", "-e"],
        ["tail", "t", "-o", "earliest", "-e"],
        ["tail", "t", "-n", "2"],
    ):
        result = run(capsys, *argv, "--url", f"ws://127.0.0.1:{unused_port()}")
        assert result.status == 2, argv
        assert "control characters" in result.error_line()


def test_produce_without_arguments_asks_for_the_topic_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = run(capsys, "produce")
    assert result.status == 2
    line = result.error_line()
    assert "TOPIC" in line and "PAYLOAD" not in line
