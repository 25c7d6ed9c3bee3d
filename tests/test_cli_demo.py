"""``rxstargate demo``, the README's first command: a summary, status 0, nothing left running."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import PulsarEndpoint
from tests.faults import child_pids
from tests.test_cli import run

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


def _assert_none_left(before: set[int]) -> None:
    left = child_pids() - before
    for pid in left:  # stop them before failing, so the suite goes on
        os.kill(pid, signal.SIGKILL)
    assert left == set()


@pytest.mark.integration  # starts local Pulsar
def test_the_demo_runs_on_its_own_local_pulsar_and_stops_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RXSTARGATE_URL", raising=False)
    before = child_pids()
    result = run(capsys, "demo", "--messages", "300")
    assert result.status == 0, result.err
    assert "rxstargate demo" in result.out
    assert "│ messages" in result.out and "300 │" in result.out
    assert "out of order per customer" in result.out
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in _rows(result.out)}
    assert rows["concurrency (handler calls at once)"] == "8"
    assert re.fullmatch(r"\d+ of 500 \(max_in_flight\)", rows["peak in flight"])
    for part in ("waiting in the backlog", "handling"):
        assert re.fullmatch(r"[\d.,]+ / [\d.,]+ / [\d.,]+ ms", rows[part]), rows
    _assert_none_left(before)


def _rows(table: str) -> list[str]:
    """The rows of a table printed by rich: lines with a label cell and a value cell."""
    return [line for line in table.splitlines() if line.count("│") == 3]


def test_the_demo_uses_a_given_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, endpoint: PulsarEndpoint
) -> None:
    monkeypatch.setenv("RXSTARGATE_URL", endpoint.ws_url)  # MemoryPulsar's
    before = child_pids()
    result = run(capsys, "demo", "--messages", "50")
    assert result.status == 0, result.err
    assert "50 │" in result.out
    _assert_none_left(before)  # no local Pulsar of its own


def _descendants(pid: int) -> set[int]:
    """The pids of ``pid``'s children and their children (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return not any(line.startswith("State:\tZ") for line in status)
    except FileNotFoundError:
        return False


def _stored_orders(gateway_log: str) -> int:
    """How many entries the demo's topic holds, asked of its gateway (0 before it is known)."""
    port = re.search(r"listening on 127\.0\.0\.1:(\d+)", gateway_log)
    topic = re.search(r"consumer persistent://(\S+)", gateway_log)
    if port is None or topic is None:
        return 0
    url = f"http://127.0.0.1:{port[1]}/admin/v2/persistent/{topic[1]}/lastMessageId"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return int(json.load(answer)["entryId"]) + 1


# The demo starts its own local Pulsar, and orders must flow before Ctrl-C (about 1 s). SIGTERM
# to the demo alone (kill, a service manager) ends it as Ctrl-C at a terminal does.
@pytest.mark.integration  # starts local Pulsar
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_at_a_terminal_ends_the_demo_with_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: signal.Signals
) -> None:
    monkeypatch.delenv("RXSTARGATE_URL", raising=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "rxstargate.cli", "demo", "--messages", "1000000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:  # orders flowing?
            logs = list(tmp_path.glob("rxstargate-local-*/gateway.log"))
            text = logs[0].read_text() if logs else ""
            # Both sockets open and orders stored: acks and deliveries in full flow.
            if "producer persistent" in text and _stored_orders(text) >= 200:
                break
            time.sleep(0.05)
        children = _descendants(process.pid)
        assert len(children) >= 2  # the broker and the gateway
        if signum == signal.SIGINT:
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C at a terminal does
        else:
            process.send_signal(signum)
        err = process.communicate(timeout=30)[1]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    assert process.returncode == 130
    assert err.decode() == "rxstargate: interrupted\n"
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = {pid for pid in children if _running(pid)}
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == set()
    assert list(tmp_path.iterdir()) == []  # its temporary data directory is gone
