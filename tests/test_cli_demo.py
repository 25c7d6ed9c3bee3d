"""``rxstargate demo``, the README's first command: a summary, status 0, nothing left running."""

from __future__ import annotations

import os
import signal

import pytest

from tests.conftest import PulsarEndpoint
from tests.faults import child_pids
from tests.test_cli import run

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_leaked_threads")]


def _assert_none_left(before: set[int]) -> None:
    left = child_pids() - before
    for pid in left:  # stop them before failing, so the suite goes on
        os.kill(pid, signal.SIGKILL)
    assert left == set()


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
    _assert_none_left(before)


def test_the_demo_uses_a_given_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pulsar: PulsarEndpoint
) -> None:
    monkeypatch.setenv("RXSTARGATE_URL", pulsar.ws_url)
    before = child_pids()
    result = run(capsys, "demo", "--messages", "50")
    assert result.status == 0, result.err
    assert "50 │" in result.out
    _assert_none_left(before)  # no local Pulsar of its own
