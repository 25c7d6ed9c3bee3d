"""The ``rxstargate`` command: arguments and help; ``local`` until SIGTERM or a fault.

Also the helpers the other command-line tests (``test_cli_*.py``) run the command with.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import websocket

import rxstargate as rs
from rxstargate.cli import main
from tests.faults import FaultProxy

BANNER_END = "Press Ctrl-C to stop."


@dataclass(frozen=True)
class Run:
    """One run of the ``rxstargate`` command: exit status and output."""

    status: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]

    def error_line(self) -> str:
        """The one stderr line of an expected failure (and no traceback)."""
        assert "Traceback" not in self.err, self.err
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        return lines[0]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    """Run ``rxstargate ARGV`` in this process; argparse's exits count as statuses."""
    try:
        status = main(list(argv))
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return Run(status, out, err)


def unused_port() -> int:
    """A local TCP port nobody listens on (just released by the system)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("command", [[], ["demo"], ["tail"], ["produce"]])
def test_help_shows_examples(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    result = run(capsys, *command, "--help")
    assert result.status == 0
    assert "examples:\n  rxstargate " in result.out


def test_usage_errors_are_one_line_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["tail"], ["tail", "t", "--count", "0"], ["produce", "t", "-p", "novalue"]):
        result = run(capsys, *argv)
        assert result.status == 2, argv
        assert result.error_line().startswith("rxstargate "), argv


def test_port_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["local", "--port", "70000"])
    assert info.value.code == 2
    assert "port must be 0-65535" in capsys.readouterr().err


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_version_prints_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"rxstargate {version('rxstargate')}"


def _split_properties(text: str) -> dict[str, str]:
    """What a reader of %h does: a backslash takes the next character as it is; an unescaped
    comma ends a property, and the first unescaped = ends its name."""
    properties: dict[str, str] = {}
    parts = [""]  # the name, then the value
    characters = iter(text)
    for char in characters:
        if char == "\\":
            parts[-1] += next(characters)
        elif char == "=" and len(parts) == 1:
            parts.append("")
        elif char == ",":
            properties[parts[0]] = parts[1]
            parts = [""]
        else:
            parts[-1] += char
    properties[parts[0]] = parts[1]
    return properties


def test_properties_in_a_format_are_escaped_so_that_they_split_back() -> None:
    from rxstargate.cli._output import compile_format

    properties = {"q": "x=y", "a,b": "1", "path": "C:\\", "plain": "v"}
    message = rs.Message(
        topic=rs.TopicName.parse("t"),
        payload=b"",
        message_id=rs.MessageId.from_parts(1, 2),
        properties=properties,
    )
    printed = compile_format("%h")(message).decode().removesuffix("\n")
    assert printed == "q=x\\=y,a\\,b=1,path=C:\\\\,plain=v"
    assert _split_properties(printed) == properties


def test_token_and_token_file_exclude_each_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["local", "--token", "a", "--token-file", str(tmp_path / "t")])
    assert info.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


@pytest.mark.parametrize("content", [None, " \n"], ids=["missing", "empty"])
def test_an_unusable_token_file_is_refused_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    assert main(["local", "--port", "0", "--broker-port", "0", "--token-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rxstargate: ") and str(path) in err


@pytest.mark.parametrize(
    ("module", "package"),
    [("pulsar_lite", "pulsar-lite"), ("pulsar", "pulsar-client"), ("websockets", "websockets")],
)
@pytest.mark.parametrize(
    "command",
    [["local", "--port", "0", "--broker-port", "0"], ["demo", "--messages", "10"]],
    ids=["local", "demo"],
)
def test_without_the_local_extra_one_line_says_which_extra_to_install(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    module: str,
    package: str,
) -> None:
    import rxstargate.local

    def run_local(**_: object) -> None:  # would serve until Ctrl-C: fail at once instead
        raise AssertionError("local Pulsar was started without its extra")

    monkeypatch.setattr(rxstargate.local, "run_local", run_local)
    monkeypatch.setitem(sys.modules, module, None)  # as in an install of the client alone
    monkeypatch.delenv("RXSTARGATE_URL", raising=False)
    result = run(capsys, *command)
    assert result.status == 1
    line = result.error_line()
    assert f"needs the local extra (missing: {package})" in line
    # Both ways to get it: from the package index, and in a clone of the repository.
    assert "pip install 'rxstargate[local]'" in line and "pip install '.[local]'" in line


class Local:
    """A running ``rxstargate local`` and what its banner said."""

    def __init__(self, process: subprocess.Popen[str], banner: dict[str, str]) -> None:
        self.process = process
        self.banner = banner

    @property
    def ws_url(self) -> str:
        return self.banner["Pulsar WebSocket API"]

    @property
    def ws_port(self) -> int:
        port = urlsplit(self.ws_url).port
        assert port
        return port

    def pid(self, child: str) -> int:
        match = re.search(rf"{child} pid (\d+)", self.banner["Processes"])
        assert match, self.banner
        return int(match.group(1))

    @property
    def directory(self) -> Path:
        return Path(self.banner["Data directory"].split(" (")[0])


def _read_banner(process: subprocess.Popen[str], deadline_s: float = 60) -> dict[str, str]:
    lines: list[str] = []

    def reader() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.strip() == BANNER_END:
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(deadline_s)
    assert lines and lines[-1] == BANNER_END, f"rxstargate local printed: {lines!r}"
    banner: dict[str, str] = {}
    for line in lines[:-1]:
        key, colon, value = line.partition(":")
        if colon:
            banner[key.strip()] = value.strip()
    return banner


@contextlib.contextmanager
def _local(*args: str, env: dict[str, str] | None = None) -> Iterator[Local]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rxstargate.cli",
            "local",
            "--port",
            "0",
            "--broker-port",
            "0",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    local: Local | None = None
    try:
        local = Local(process, _read_banner(process))
        yield local
    finally:
        if process.poll() is None:
            process.terminate()  # as a user would stop it: it removes its temporary data
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if local is not None and "temporary" in local.banner.get("Data directory", ""):
            shutil.rmtree(local.directory, ignore_errors=True)  # in case it was killed
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _send(ws_url: str, topic: str = "persistent/public/default/cli", **options: object) -> str:
    sock = websocket.create_connection(f"{ws_url}/ws/v2/producer/{topic}", timeout=20, **options)
    try:
        sock.send('{"payload": "eA==", "context": "1"}')
        result: str = json.loads(sock.recv())["result"]
        return result
    finally:
        sock.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return not any(line.startswith("State:\tZ") for line in status)
    except FileNotFoundError:
        return False


@pytest.mark.integration  # starts local Pulsar
def test_local_serves_both_ports_says_where_its_files_are_and_stops_on_sigterm() -> None:
    with _local() as local:
        urls = [local.ws_url, local.banner["Pulsar broker"]]
        for url in urls:
            parts = urlsplit(url)
            assert parts.hostname == "127.0.0.1"
            assert parts.port
            socket.create_connection((parts.hostname, parts.port), timeout=5).close()
        assert "temporary" in local.banner["Data directory"]
        assert local.directory.is_dir()
        logs = [Path(p.strip()) for p in local.banner["Logs"].split(",")]
        assert {p.name for p in logs} == {"broker.log", "gateway.log", "gateway-client.log"}
        assert all(p.parent == local.directory and p.exists() for p in logs)
        local.process.send_signal(signal.SIGTERM)
        out, err = local.process.communicate(timeout=30)
        assert local.process.returncode == 0, err
        assert "stopped" in out
        for url in urls:
            parts = urlsplit(url)
            assert parts.port
            with pytest.raises(OSError):
                socket.create_connection((parts.hostname, parts.port), timeout=2).close()
        assert not local.directory.exists()  # the temporary directory went with it


@pytest.mark.integration  # starts local Pulsar
@pytest.mark.parametrize("source", ["file", "environment"])
def test_local_takes_its_token_from_a_file_or_the_environment(tmp_path: Path, source: str) -> None:
    secret = "s3cret-" + source
    args: list[str] = []
    env = {"RXSTARGATE_TOKEN": ""}
    if source == "file":
        (tmp_path / "token").write_text(secret + "\n")
        args = ["--token-file", str(tmp_path / "token")]
    else:
        env = {"RXSTARGATE_TOKEN": secret}
    with _local(*args, env=env) as local:
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            _send(local.ws_url)
        assert info.value.status_code == 401
        assert _send(local.ws_url, header=[f"Authorization: Bearer {secret}"]) == "ok"
        for pid in (local.process.pid, local.pid("broker"), local.pid("gateway")):
            assert secret not in Path(f"/proc/{pid}/cmdline").read_text()


@pytest.mark.integration  # starts local Pulsar
@pytest.mark.parametrize("child", ["broker", "gateway"])
def test_local_exits_non_zero_and_says_why_when_a_child_dies(child: str) -> None:
    with _local() as local:
        pid = local.pid(child)
        os.kill(pid, signal.SIGKILL)
        _, err = local.process.communicate(timeout=30)
        try:
            assert local.process.returncode == 1
            assert len(err.strip().splitlines()) == 1, err
            assert f"(pid {pid}) exited: killed by SIGKILL" in err
            assert ("broker" if child == "broker" else "gateway") in err.split("(pid")[0]
            assert f"logs in {local.directory}" in err
            assert (local.directory / "broker.log").exists()  # kept, to be read
            other = local.pid("gateway" if child == "broker" else "broker")
            assert not _alive(other)
        finally:
            shutil.rmtree(local.directory, ignore_errors=True)


# Slow (about 5 s): `rxstargate local` starts, then stops within its bounds with the broker
# stopped, which is the wait this test is about.
@pytest.mark.integration  # starts local Pulsar
def test_local_stops_promptly_after_faults_even_with_a_stalled_broker() -> None:
    with _local() as local, FaultProxy(local.ws_port) as proxy:
        topic = "persistent/public/default/faulty"
        assert _send(local.ws_url, topic) == "ok"
        query = "subscriptionType=Shared&subscriptionInitialPosition=Earliest"
        consumer_url = f"{proxy.ws_url}/ws/v2/consumer/{topic}/sub?{query}"
        held = websocket.create_connection(consumer_url, timeout=20)
        assert base64.b64decode(json.loads(held.recv())["payload"]) == b"x"
        assert proxy.reset(half_open=True) == 1  # left half-open, holding the message
        reset = websocket.create_connection(consumer_url, timeout=20)
        assert proxy.reset() == 1  # reset on both sides
        for sock in (held, reset):
            sock.shutdown()
        producer = websocket.create_connection(f"{proxy.ws_url}/ws/v2/producer/{topic}", timeout=20)
        for i in range(200):  # a burst in flight when everything stops
            producer.send(json.dumps({"payload": "eA==", "context": str(i)}))
        broker = local.pid("broker")
        os.kill(broker, signal.SIGSTOP)  # every broker-side close now hangs
        try:
            local.process.send_signal(signal.SIGTERM)
            local.process.wait(timeout=5)  # it would take 15 s and more without bounds
            assert local.process.returncode == 0
            assert not _alive(broker)
            assert not _alive(local.pid("gateway"))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(broker, signal.SIGKILL)
            producer.shutdown()


@pytest.mark.parametrize(
    "listening",
    # bound but not listening: the broker starts before the gateway finds its port taken
    [True, pytest.param(False, marks=pytest.mark.integration)],
    ids=["listening", "bound"],
)
def test_local_says_in_one_line_that_its_port_is_in_use(
    capsys: pytest.CaptureFixture[str], listening: bool
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        if listening:
            taken.listen()
        port = taken.getsockname()[1]
        result = run(capsys, "local", "--port", str(port), "--broker-port", "0")
    assert result.status == 1
    assert result.error_line() == (
        f"rxstargate: the WebSocket gateway's port 127.0.0.1:{port} is already in use"
    )


def test_a_ctrl_c_while_the_parser_is_built_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import rxstargate.cli._main

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(rxstargate.cli._main, "_parser", interrupted)
    result = run(capsys, "local")
    assert (result.status, result.error_line()) == (130, "rxstargate: interrupted")


# CPython (3.11 to 3.13 at least) records a KeyboardInterrupt that leaves code run by exec() or
# eval() of a string, even when the caller catches it, and a `python -m` run then ends by SIGINT
# (status -2) instead of with its own. Ctrl-C or SIGTERM landing while the demo makes a dataclass
# during an import did just that. The interrupt here comes from inside such an exec().
def test_python_m_exits_130_after_an_interrupt_inside_exec(tmp_path: Path) -> None:
    (tmp_path / "interrupted_cli").mkdir()
    (tmp_path / "interrupted_cli" / "__main__.py").write_text(
        "import sys\n"
        "from rxstargate.cli import _main\n"
        "def interrupted():\n"
        "    exec('raise KeyboardInterrupt')\n"
        "_main._parser = interrupted\n"
        "sys.argv = ['rxstargate', 'local']\n"
        "import rxstargate.cli.__main__  # runs the command, as `python -m rxstargate.cli` does\n"
    )
    path = os.pathsep.join([str(tmp_path), str(Path(rs.__file__).parents[1])])
    done = subprocess.run(
        [sys.executable, "-m", "interrupted_cli"],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": path},
        timeout=60,
    )
    assert (done.returncode, done.stderr.decode()) == (130, "rxstargate: interrupted\n")
