"""The gateway runs on uvloop when it is installed and on asyncio's own loop otherwise."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rxstargate.exceptions import ConfigurationError
from rxstargate.local._eventloop import loop_factory, loop_name
from tests.local.conftest import Raw

# A stand-in for uvloop: a loop class of its own module, so the gateway can be seen to pick it.
FAKE_UVLOOP = """
import asyncio


class Loop(asyncio.SelectorEventLoop):
    pass


def new_event_loop():
    return Loop()
"""

HIDE_UVLOOP = "import sys; sys.modules['uvloop'] = None; "


def fake_uvloop_module() -> types.ModuleType:
    module = types.ModuleType("uvloop")
    exec(FAKE_UVLOOP, module.__dict__)
    return module


def test_auto_takes_uvloop_when_it_can_be_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_uvloop_module()
    monkeypatch.setitem(sys.modules, "uvloop", fake)
    assert loop_factory() is fake.new_event_loop
    assert loop_factory("uvloop") is fake.new_event_loop


def test_auto_falls_back_to_the_asyncio_loop_without_uvloop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert loop_factory() is asyncio.new_event_loop
    assert loop_factory("auto") is asyncio.new_event_loop


def test_the_asyncio_loop_is_taken_when_asked_for_even_with_uvloop_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", fake_uvloop_module())
    assert loop_factory("asyncio") is asyncio.new_event_loop


def test_insisting_on_uvloop_without_it_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(ConfigurationError, match=r"uvloop is not installed.*speedups"):
        loop_factory("uvloop")


def test_an_unknown_loop_kind_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="'tornado'"):
        loop_factory("tornado")


def test_the_loop_is_named_by_its_module(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_uvloop_module()
    plain, other = asyncio.new_event_loop(), fake.new_event_loop()
    try:
        assert (loop_name(plain), loop_name(other)) == ("asyncio", "uvloop")
    finally:
        plain.close()
        other.close()


def test_the_gateway_process_refuses_to_insist_on_uvloop_without_it(tmp_path: Path) -> None:
    serve = f"{HIDE_UVLOOP}from rxstargate.local._serve import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", serve, "pulsar://127.0.0.1:1", "0", "--loop", "uvloop"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 2
    assert "uvloop is not installed" in done.stderr
    assert "Traceback" not in done.stderr


@contextmanager
def gateway_process(
    broker_url: str, tmp_path: Path, prelude: str, *arguments: str
) -> Iterator[tuple[str, Path]]:
    """A gateway process on ``broker_url``; yields its WebSocket URL and its log's path."""
    log_path = tmp_path / "gateway.log"
    serve = f"{prelude}from rxstargate.local._serve import main; main()"
    env_path = f"{tmp_path}:{Path(__file__).parents[2]}"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", serve, broker_url, "0", *arguments],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONPATH": env_path},
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        assert line[:1] == ["LISTENING"], log_path.read_text()
        yield f"ws://127.0.0.1:{line[1]}", log_path
    finally:
        process.terminate()
        process.wait(30)
        if process.stdout is not None:
            process.stdout.close()


def round_trip(ws_url: str, topic_name: str) -> dict[str, Any]:
    """Produce one message through the gateway and consume it; returns the delivered frame."""
    raw = Raw(ws_url, None)
    try:
        consumer = raw.consumer(topic_name, "loop")
        producer = raw.producer(topic_name)
        raw.send(producer, {"payload": raw.b64(b"on either loop"), "context": "1"})
        assert raw.recv(producer)["result"] == "ok"
        delivered = raw.recv(consumer)
        raw.send(consumer, {"messageId": delivered["messageId"]})
        return delivered
    finally:
        raw.close_all()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("prelude", "arguments", "expected"),
    [
        (HIDE_UVLOOP, (), "asyncio"),
        ("", ("--loop", "asyncio"), "asyncio"),
        ("", (), "uvloop"),  # the stand-in uvloop, found on the path
    ],
    ids=["auto-without-uvloop", "asyncio-asked-for", "auto-with-uvloop"],
)
def test_the_gateway_serves_on_the_loop_it_was_given(
    pulsar: Any,
    topic_name: str,
    tmp_path: Path,
    prelude: str,
    arguments: tuple[str, ...],
    expected: str,
) -> None:
    (tmp_path / "uvloop.py").write_text(FAKE_UVLOOP)
    with gateway_process(pulsar.broker_url, tmp_path, prelude, *arguments) as (url, log_path):
        delivered = round_trip(url, topic_name)
    assert delivered["payload"] == Raw.b64(b"on either loop")
    assert f"event loop: {expected}" in log_path.read_text()
