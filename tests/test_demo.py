"""The demo end to end on its own local Pulsar: figures that add up, nothing left running."""

from __future__ import annotations

import os
import signal

import pytest

from rxstargate.demo import run_demo
from tests.faults import child_pids

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_leaked_threads")]


def test_the_demo_processes_every_order_in_order_and_leaves_nothing_running() -> None:
    before = child_pids()
    summary = run_demo(messages=800, customers=40, show=False)
    assert summary.messages == 800
    assert summary.out_of_order == 0
    assert summary.throughput > 0 and 0 <= summary.latency_ms[0] <= summary.latency_ms[2]
    assert 0 < summary.peak_in_flight <= 500
    # The summary says what bounded it, and where the latency went.
    assert (summary.max_in_flight, summary.concurrency) == (500, 8)
    assert all(w <= e for w, e in zip(summary.waiting_ms, summary.latency_ms, strict=True))
    assert 0 < summary.handling_ms[0] <= summary.handling_ms[2] <= summary.latency_ms[2]
    left = child_pids() - before
    for pid in left:  # clean up before failing, so the suite goes on
        os.kill(pid, signal.SIGKILL)
    assert left == set()
