"""Shared fixtures: one local Pulsar per test session, or the endpoint in RXSTARGATE_WS_URL.

Integration tests run against the embedded local Pulsar (broker + WebSocket gateway, loopback only).
Set RXSTARGATE_WS_URL (and RXSTARGATE_BROKER_URL for interop tests with the official client) to
point the same suite at a real Pulsar cluster.

Every test that needs a broker is marked ``integration``, so ``pytest -m "not integration"``
starts none: a test that asks for the ``pulsar`` fixture without the marker is refused when the
tests are collected, and one that starts a broker of its own without it fails.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# Property tests: a quick pass by default, many more examples with HYPOTHESIS_PROFILE=thorough
# (CI runs the property tests that way too). No deadline in either: the suite shares its cores.
settings.register_profile("fast", max_examples=40, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C raises KeyboardInterrupt in the tests' process, as in a terminal.

    A shell starts a command it runs in the background with SIGINT ignored, and Python then
    leaves it ignored: the tests that interrupt the main thread would wait in vain.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


#: What local Pulsar names its temporary data directories (``tempfile.mkdtemp(prefix=...)``).
LOCAL_TEMP_DIRS = "rxstargate-local-*"


@dataclass(frozen=True)
class PulsarEndpoint:
    """Where the integration tests find Pulsar."""

    ws_url: str
    broker_url: str | None


INTEGRATION = "integration"


def _uses_session_pulsar(item: pytest.Item) -> bool:
    """Whether the test asks (directly or through its fixtures) for the session's broker."""
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.get("pulsar", ()) if info is not None else ()
    return any(definition.func is _session_pulsar for definition in definitions[-1:])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if _uses_session_pulsar(item) and item.get_closest_marker(INTEGRATION) is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests use the session's Pulsar but are not marked integration: "
            + ", ".join(unmarked)
        )


#: The test this process is running (its setup, call and teardown), if any.
_running_test: pytest.Item | None = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    global _running_test
    _running_test = item
    try:
        return (yield)
    finally:
        _running_test = None


@pytest.fixture(scope="session", autouse=True)
def no_broker_unless_integration() -> Iterator[None]:
    """A test not marked ``integration`` cannot start a local Pulsar broker (in this process).

    One guard for the whole session, which asks which test is running: patching the broker for
    each test instead added a fixture and a monkeypatch to every test.
    """
    from rxstargate.local import _broker

    start = _broker.Broker.start

    def start_if_integration(broker: _broker.Broker, *args: Any, **kwargs: Any) -> None:
        test = _running_test
        if test is not None and test.get_closest_marker(INTEGRATION) is None:
            raise AssertionError(f"{test.nodeid} starts a broker: mark it integration")
        start(broker, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_broker.Broker, "start", start_if_integration)
        yield


def _session_pulsar(request: pytest.FixtureRequest) -> Iterator[PulsarEndpoint]:
    """A Pulsar WebSocket endpoint: local Pulsar, or the one named by RXSTARGATE_WS_URL.

    In a parallel run (pytest-xdist) every worker uses one local Pulsar, which the first worker
    that needs it starts and the run's controller stops (tests/shared_pulsar.py).
    """
    ws_url = os.environ.get("RXSTARGATE_WS_URL")
    if ws_url:
        yield PulsarEndpoint(ws_url, os.environ.get("RXSTARGATE_BROKER_URL"))
        return
    shared = getattr(request.config, "workerinput", {}).get(SHARED_PULSAR)
    if shared is not None:
        from tests import shared_pulsar

        yield PulsarEndpoint(*shared_pulsar.endpoint(Path(shared), os.getppid()))
        return
    from rxstargate.local import LocalPulsar

    with LocalPulsar() as local:
        if local.directory is not None:
            _SESSION_DIRS.add(Path(local.directory).name)
        yield PulsarEndpoint(local.ws_url, local.broker_url)


pulsar = pytest.fixture(scope="session", name="pulsar")(_session_pulsar)

#: The key under which xdist's workers learn the folder of the run's shared local Pulsar.
SHARED_PULSAR = "rxstargate_shared_pulsar"
_SHARED_FOLDER = pytest.StashKey[Path]()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """In xdist's controller: each worker gets the folder of the run's one local Pulsar."""
    config = node.config
    if _SHARED_FOLDER not in config.stash:
        config.stash[_SHARED_FOLDER] = Path(tempfile.mkdtemp(prefix="rxstargate-tests-"))
    node.workerinput[SHARED_PULSAR] = str(config.stash[_SHARED_FOLDER])


def pytest_unconfigure(config: pytest.Config) -> None:
    """In xdist's controller: stop the run's local Pulsar, if a worker started it."""
    folder = config.stash.get(_SHARED_FOLDER, None)
    if folder is not None:
        from tests import shared_pulsar

        shared_pulsar.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


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
    # What folder.glob(LOCAL_TEMP_DIRS) finds, at a third of its cost (it runs twice a test).
    names = {name for name in os.listdir(folder) if fnmatch.fnmatchcase(name, LOCAL_TEMP_DIRS)}
    return names - _SESSION_DIRS


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


class Backend:
    """Where a test's clients connect: a MemoryPulsar, or the session's Pulsar.

    Tests that check the client run on MemoryPulsar; the few that are also kept as real-broker
    twins take the parametrized ``backend`` fixture, whose ``local`` half is ``integration``.
    """

    def __init__(self, memory: Any = None, endpoint: PulsarEndpoint | None = None) -> None:
        self.memory = memory
        self.endpoint = endpoint
        self.name = "memory" if memory is not None else "local"
        self._clients: list[Any] = []

    def client(self, **kwargs: Any) -> Any:
        """A new ``rs.Client`` on this backend (closed with it, if the test does not)."""
        import rxstargate as rs

        if self.memory is not None:
            return self.memory.client(**kwargs)
        assert self.endpoint is not None
        client = rs.Client(self.endpoint.ws_url, **kwargs)
        self._clients.append(client)
        return client

    def backlog(self, topic: str, subscription: str, subscription_type: str = "Exclusive") -> int:
        """How many messages ``subscription`` holds unacked (it is left empty on local Pulsar)."""
        if self.memory is not None:
            return int(self.memory.backlog(topic, subscription))
        assert self.endpoint is not None
        from tests.faults import unacked_messages

        return len(unacked_messages(self.endpoint.ws_url, topic, subscription, subscription_type))

    def close(self) -> None:
        for client in self._clients:
            client.close()
        if self.memory is not None:
            self.memory.close()


@pytest.fixture
def memory(no_leaked_threads: None) -> Iterator[Any]:
    """A MemoryPulsar on real time, closed (with its clients) after the test."""
    from rxstargate.testing import MemoryPulsar

    with MemoryPulsar() as pulsar:
        yield pulsar


@pytest.fixture(params=["memory", pytest.param("local", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest, no_leaked_threads: None) -> Iterator[Backend]:
    """The test twice: on MemoryPulsar, and as a real-broker twin on the session's Pulsar."""
    if request.param == "memory":
        from rxstargate.testing import MemoryPulsar

        where = Backend(memory=MemoryPulsar())
    else:
        where = Backend(endpoint=request.getfixturevalue("pulsar"))
    try:
        yield where
    finally:
        where.close()


@pytest.fixture
def faults(backend: Backend) -> Iterator[Any]:
    """The test's connections through faults: a FaultProxy or MemoryPulsar's (tests/faults.py)."""
    from tests.faults import Faults

    made = Faults(backend)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> PulsarEndpoint:
    """Where a test that connects by URL (the command line, a child process) connects.

    Marked ``integration``: the session's Pulsar. Otherwise a MemoryPulsar, which every
    ``rs.Client`` made during the test with its URL reaches (the command line makes its own).
    """
    if request.node.get_closest_marker(INTEGRATION) is not None:
        found: PulsarEndpoint = request.getfixturevalue("pulsar")
        return found
    import rxstargate as rs

    memory = request.getfixturevalue("memory")
    made = rs.Client

    class RoutedClient(made):  # type: ignore[misc, valid-type]
        def __init__(self, url: str, *args: Any, **kwargs: Any) -> None:
            if url == memory.url:
                kwargs.setdefault("connect", memory.connect)
            super().__init__(url, *args, **kwargs)

    patch = request.getfixturevalue("monkeypatch")
    patch.setattr(rs, "Client", RoutedClient)
    return PulsarEndpoint(memory.url, None)


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A fresh topic name per test, so tests never see each other's messages."""
    safe = "".join(ch if ch.isalnum() else "-" for ch in request.node.name)[:60]
    return f"persistent://public/default/{safe}-{uuid.uuid4().hex[:8]}"


def _live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


@pytest.fixture
def prompt_timer_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operators' shared timer thread ends 5 ms after its last timer instead of 0.1 s.

    ``no_leaked_threads`` waits for it to end: in a test that started it, that was 0.1 s.
    """
    from rxstargate._timers import TimerScheduler

    monkeypatch.setattr(TimerScheduler, "_shared", TimerScheduler(idle_exit=0.005))


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """Fail the test if it leaves threads running that were not there before it."""
    before = _live_threads()
    yield
    deadline = time.monotonic() + 5.0
    while leaked := {
        t for t in _live_threads() - before if not t.daemon or t.name.startswith("rxstargate")
    }:
        if time.monotonic() >= deadline:
            names = sorted(t.name for t in leaked)
            pytest.fail(f"threads left running after the test: {names}")
        for thread in leaked:  # back as soon as they end, not at the next look
            thread.join(max(0.0, deadline - time.monotonic()))


def _broker_free_run(config: pytest.Config) -> bool:
    """Whether the run is ``-m "not integration"`` (as the README and CI write it)."""
    return " ".join(config.option.markexpr.split()) == f"not {INTEGRATION}"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """How many workers ``-n auto`` (the default) starts: twice the cores for the whole suite,
    whose integration tests mostly wait on the broker, one more than the cores for the
    broker-free part, which is CPU-bound.

    Measured on two cores: the whole suite took 46 s with four workers and 52 s with three;
    the broker-free part 13.5-14.4 s with three and 13.6-15.5 s with four (each worker
    collects, and so assertion-rewrites, every test module).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    return cores + 1 if _broker_free_run(config) else 2 * cores


#: A test module marked ``integration`` as a whole says so on a line of its own.
_WHOLE_MODULE_INTEGRATION = "\npytestmark = pytest.mark.integration\n"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """``-m "not integration"`` does not even import the modules whose every test needs Pulsar.

    Every worker imports (and assertion-rewrites) every module it collects: leaving out those
    that would be deselected whole saves each worker about half a second of CPU.
    """
    if not _broker_free_run(config):
        return None
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    return _WHOLE_MODULE_INTEGRATION in collection_path.read_text(encoding="utf-8") or None
