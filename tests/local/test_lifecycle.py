"""LocalPulsar starts, stops and dies cleanly, and keeps data in a given directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import websocket

from rxstargate.exceptions import StargateError
from rxstargate.local import LocalPulsar, LocalPulsarError

pytestmark = pytest.mark.integration


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return any(line.startswith("State:\tZ") for line in status)
    except FileNotFoundError:
        return True


def _wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _send(ws_url: str, topic: str, payload: str, **options: Any) -> dict[str, Any]:
    sock = websocket.create_connection(f"{ws_url}/ws/v2/producer/{topic}", timeout=20, **options)
    try:
        sock.send(f'{{"payload": "{payload}", "context": "1"}}')
        ack: dict[str, Any] = json.loads(sock.recv())
        return ack
    finally:
        sock.close()


@pytest.mark.parametrize("in_process", [False, True], ids=["gateway-process", "gateway-thread"])
def test_stop_leaves_no_process_thread_or_port_behind(
    no_leaked_threads: None, in_process: bool
) -> None:
    local = LocalPulsar(gateway_in_process=in_process)
    with local:
        assert local.ws_url.startswith("ws://127.0.0.1:")
        assert local.broker_url.startswith("pulsar://127.0.0.1:")
        assert _send(local.ws_url, "persistent/public/default/life", "eA==")["result"] == "ok"
        pids = [pid for pid in (local.broker_pid, local.gateway_pid) if pid]
        ports = [local.port, local.broker_port]
    assert pids
    assert all(_gone(pid) for pid in pids)
    assert not any(_accepts(port) for port in ports)
    local.stop()  # idempotent


def test_children_die_when_the_parent_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from rxstargate.local import LocalPulsar
        local = LocalPulsar().start()
        print(local.broker_pid, local.gateway_pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # a killed parent cannot remove its data
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        broker_pid, gateway_pid = (int(p) for p in line.split())
        assert not _gone(broker_pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert _wait_gone(broker_pid), "the broker outlived its killed parent"
        assert _wait_gone(gateway_pid), "the gateway outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        for left in tmp_path.glob("rxstargate-local-*"):  # what the killed parent could not remove
            shutil.rmtree(left, ignore_errors=True)


def test_a_given_data_dir_keeps_messages_across_restarts(tmp_path: Path) -> None:
    topic = "persistent/public/default/kept"
    with LocalPulsar(data_dir=tmp_path) as local:
        assert _send(local.ws_url, topic, "a2VwdA==")["result"] == "ok"
    assert (tmp_path / "pulsar-lite.toml").exists()
    with LocalPulsar(data_dir=tmp_path) as local:
        url = f"{local.ws_url}/ws/v2/reader/{topic}?messageId=earliest"
        sock = websocket.create_connection(url, timeout=20)
        try:
            assert '"payload":"a2VwdA=="' in sock.recv()
        finally:
            sock.close()


def test_a_token_is_required_when_configured() -> None:
    topic = "persistent/public/default/secret"
    with LocalPulsar(token="s3cret", gateway_in_process=True) as local:
        for options in ({}, {"header": ["Authorization: Bearer wrong"]}):
            with pytest.raises(websocket.WebSocketBadStatusException) as info:
                _send(local.ws_url, topic, "eA==", **options)
            assert info.value.status_code == 401
            assert b"Failed to authenticate" in (info.value.resp_body or b"")
        header = {"header": ["Authorization: Bearer s3cret"]}
        assert _send(local.ws_url, topic, "eA==", **header)["result"] == "ok"
        assert _send(local.ws_url, topic + "?token=s3cret", "eA==")["result"] == "ok"


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LocalPulsarError) as info:
            LocalPulsar(port=port).start()
        assert isinstance(info.value, StargateError)
        assert "gateway" in str(info.value)
        with pytest.raises(LocalPulsarError, match="already in use"):
            LocalPulsar(broker_port=port).start()


def test_children_outlive_the_short_lived_thread_that_started_them(
    no_leaked_threads: None,
) -> None:
    local = LocalPulsar()
    starter = threading.Thread(target=local.start, name="test-starter")
    starter.start()
    starter.join(60)
    try:
        assert local.broker_pid is not None
        time.sleep(0.3)  # give a parent-death signal time to land, were it sent
        assert not _gone(local.broker_pid)
        assert _send(local.ws_url, "persistent/public/default/thread", "eA==")["result"] == "ok"
    finally:
        local.stop()


def test_without_the_local_extra_start_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    import rxstargate.local._errors

    real_find_spec = importlib.util.find_spec

    def without_pulsar_lite(name: str, *args: Any) -> Any:
        return None if name == "pulsar_lite" else real_find_spec(name, *args)

    monkeypatch.setattr(rxstargate.local._errors, "find_spec", without_pulsar_lite)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    local = LocalPulsar()
    with pytest.raises(LocalPulsarError) as raised:
        local.start()
    assert str(raised.value) == (
        "local Pulsar needs the local extra (missing: pulsar-lite): pip install"
        " 'rxstargate[local]', or in a clone of rxstargate: pip install '.[local]'"
    )
    assert local.broker_pid is None and not list(tmp_path.iterdir())  # nothing was started
