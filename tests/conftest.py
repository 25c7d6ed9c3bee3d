"""Shared fixtures: one local Pulsar per test session, or the endpoint in RXSTARGATE_WS_URL.

Integration tests run against the embedded local Pulsar (broker + WebSocket gateway, loopback only).
Set RXSTARGATE_WS_URL (and RXSTARGATE_BROKER_URL for interop tests with the official client) to
point the same suite at a real Pulsar cluster.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class PulsarEndpoint:
    """Where the integration tests find Pulsar."""

    ws_url: str
    broker_url: str | None


@pytest.fixture(scope="session")
def pulsar() -> Iterator[PulsarEndpoint]:
    """A Pulsar WebSocket endpoint: local Pulsar, or the one named by RXSTARGATE_WS_URL."""
    ws_url = os.environ.get("RXSTARGATE_WS_URL")
    if ws_url:
        yield PulsarEndpoint(ws_url, os.environ.get("RXSTARGATE_BROKER_URL"))
        return
    from rxstargate.local import LocalPulsar

    with LocalPulsar() as local:
        yield PulsarEndpoint(local.ws_url, local.broker_url)


@pytest.fixture
def client(pulsar: PulsarEndpoint) -> Iterator[Any]:
    """An rxstargate client on the session's Pulsar, closed after the test."""
    import rxstargate as rs

    with rs.Client(pulsar.ws_url) as c:
        yield c


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A fresh topic name per test, so tests never see each other's messages."""
    safe = "".join(ch if ch.isalnum() else "-" for ch in request.node.name)[:60]
    return f"persistent://public/default/{safe}-{uuid.uuid4().hex[:8]}"


def _live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """Fail the test if it leaves threads running that were not there before it."""
    before = _live_threads()
    yield
    deadline = time.monotonic() + 5.0
    leaked: set[threading.Thread] = set()
    while time.monotonic() < deadline:
        leaked = {
            t for t in _live_threads() - before if not t.daemon or t.name.startswith("rxstargate")
        }
        if not leaked:
            return
        time.sleep(0.05)
    names = sorted(t.name for t in leaked)
    pytest.fail(f"threads left running after the test: {names}")
