"""The ``rxstargate`` command: argument checking, and ``local`` in the foreground until SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from urllib.parse import urlsplit

import pytest

from rxstargate.cli import main


def test_port_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["local", "--port", "70000"])
    assert info.value.code == 2
    assert "port must be 0-65535" in capsys.readouterr().err


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def _read_urls(process: subprocess.Popen[str], deadline_s: float) -> dict[str, str]:
    urls: dict[str, str] = {}
    lines: list[str] = []

    def reader() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = re.search(r"((?:ws|pulsar)://127\.0\.0\.1:\d+)", line)
            if match:
                urls[match.group(1).split(":")[0]] = match.group(1)
            if len(urls) == 2:
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(deadline_s)
    assert len(urls) == 2, f"rxstargate local printed: {lines!r}"
    return urls


def test_local_serves_both_ports_and_stops_on_sigterm(tmp_path: object) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "rxstargate.cli", "local", "--port", "0", "--broker-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        urls = _read_urls(process, 60)
        for url in urls.values():
            parts = urlsplit(url)
            assert parts.hostname == "127.0.0.1"
            assert parts.port
            socket.create_connection((parts.hostname, parts.port), timeout=5).close()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "stopped" in out
        for url in urls.values():
            parts = urlsplit(url)
            assert parts.port
            with pytest.raises(OSError):
                socket.create_connection((parts.hostname, parts.port), timeout=2).close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
