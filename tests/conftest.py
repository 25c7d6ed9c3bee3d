"""Shared fixtures: one local Pulsar per test session, or the endpoint in RXSTARGATE_WS_URL.

Integration tests run against the embedded local Pulsar (broker + WebSocket gateway, loopback only).
Set RXSTARGATE_WS_URL (and RXSTARGATE_BROKER_URL for interop tests with the official client) to
point the same suite at a real Pulsar cluster.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: What local Pulsar names its temporary data directories (``tempfile.mkdtemp(prefix=...)``).
LOCAL_TEMP_DIRS = "rxstargate-local-*"


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
        if local.directory is not None:
            _SESSION_DIRS.add(Path(local.directory).name)
        yield PulsarEndpoint(local.ws_url, local.broker_url)


#: Temporary directories that session fixtures own (and remove when the session ends).
_SESSION_DIRS: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def private_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's temporary folder, for this process and every child it starts.

    Inside pytest's own base directory, so that what a test leaves there is told apart from
    what other programs on the machine make, and is not left in the system's temp folder.
    """
    folder = tmp_path_factory.mktemp("tmp", numbered=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(folder))
        patch.setattr(tempfile, "tempdir", str(folder))
        yield folder


def _local_dirs(folder: Path) -> set[str]:
    return {path.name for path in folder.glob(LOCAL_TEMP_DIRS)} - _SESSION_DIRS


@pytest.fixture(autouse=True)
def no_leftover_temp_dirs(private_temp_dir: Path) -> Iterator[None]:
    """Fail the test if it leaves a local Pulsar data directory in the temp folder."""
    before = _local_dirs(private_temp_dir)
    yield
    deadline = time.monotonic() + 5.0
    while (left := _local_dirs(private_temp_dir) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    for name in left:  # remove them before failing, so that the next test starts clean
        shutil.rmtree(private_temp_dir / name, ignore_errors=True)
    if left:
        pytest.fail(f"the test left temporary directories behind: {sorted(left)}")


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
