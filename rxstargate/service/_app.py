"""``rs.App``: stargate's top-level supervisor and registry, from one configuration."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

from rxstargate._config import checked_seconds
from rxstargate._producer import Producer
from rxstargate.client import Client
from rxstargate.exceptions import ConfigurationError, StargateError, StargateTimeoutError
from rxstargate.pipeline import Pipeline
from rxstargate.service._build import (
    ProducerEntry,
    StreamEntry,
    build_producer,
    build_stream,
)
from rxstargate.service._connections import ConnectionWatch
from rxstargate.service._figures import all_connected, producer_figures, stream_figures
from rxstargate.service._handlers import HANDLING
from rxstargate.service._metrics import AppMetrics
from rxstargate.service._monitor import Monitor, emit
from rxstargate.service._specs import ConsumerSpec, ProducerSpec, ReaderSpec

__all__ = ["App", "AppState"]


class AppState(StrEnum):
    """Where an :class:`App` is in its life."""

    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


def _specs(given: Any, kind: type, what: str) -> dict[str, Any]:
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise ConfigurationError(f"{what} must be a mapping of names to {kind.__name__}s")
    for name, spec in given.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"{what}: a name must be a non-empty str, not {name!r}")
        if not isinstance(spec, kind):
            raise ConfigurationError(
                f"{what}[{name!r}] must be a {kind.__name__}, not {spec!r:.80}"
            )
    return dict(given)


class App:
    """Named producers, consumers and readers on one client, started and drained together.

    Consumers and readers run as supervised pipelines (``topic.consume``: restarted with
    backoff after failures retrying can fix); ``publish_to`` bridges a handler's results to
    one of the app's producers, each input acked once its output is stored. Every spec is
    checked when the app is made, with the errors ``topic.producer`` and ``topic.consume``
    give, prefixed with the stream's name; nothing connects before :meth:`start` (a producer
    opens on its first send).

    Stopping (:meth:`stop`, or leaving ``with``) drains in order: consumers and readers take
    no new messages and finish and settle their work, producers are flushed, then the sockets
    close. An app runs once.

    Args:
        url: the Pulsar WebSocket API (``ws://`` or ``wss://``), unless ``client`` is given.
        token: the token to send.
        client: a client of yours to use instead (the app then leaves it open when it stops).
        producers: ProducerSpecs by name.
        consumers: ConsumerSpecs by name.
        readers: ReaderSpecs by name (consumers and readers share one set of names).
        **client_options: more arguments of :class:`~rxstargate.Client` (``close_timeout``,
            ``reconnect``, ...).

    Raises:
        ConfigurationError: for a bad spec, a name used twice, or a ``publish_to`` or
            ``dead_letter_to`` that names no producer of the app (InvalidOptionError for a
            bad Pulsar option).

    Example:
        >>> app = rs.App("ws://127.0.0.1:8080",  # doctest: +SKIP
        ...     producers={"receipts": rs.ProducerSpec("receipts")},
        ...     consumers={"billing": rs.ConsumerSpec("orders", "billing", handler=charge,
        ...                                           publish_to="receipts")})
        >>> with app:  # doctest: +SKIP
        ...     app.wait()
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        client: Client | None = None,
        producers: Mapping[str, ProducerSpec] | None = None,
        consumers: Mapping[str, ConsumerSpec] | None = None,
        readers: Mapping[str, ReaderSpec] | None = None,
        **client_options: Any,
    ) -> None:
        producer_specs = _specs(producers, ProducerSpec, "producers")
        consumer_specs = _specs(consumers, ConsumerSpec, "consumers")
        reader_specs = _specs(readers, ReaderSpec, "readers")
        both = sorted(set(consumer_specs) & set(reader_specs))
        if both:
            raise ConfigurationError(f"consumers and readers share one set of names: {both}")
        if client is None:
            if url is None:
                raise ConfigurationError("an App needs a url (or a client)")
            client = Client(url, token=token, **client_options)
            self._owns_client = True
        elif not isinstance(client, Client):
            raise ConfigurationError(f"client must be a rxstargate.Client, not {client!r:.80}")
        elif url is not None or token is not None or client_options:
            raise ConfigurationError("give an App either a client or a url and its options")
        else:
            self._owns_client = False
        self.client = client
        self.producers: Mapping[str, ProducerSpec] = MappingProxyType(producer_specs)
        self.consumers: Mapping[str, ConsumerSpec] = MappingProxyType(consumer_specs)
        self.readers: Mapping[str, ReaderSpec] = MappingProxyType(reader_specs)
        self._lock = threading.Lock()
        self._state = AppState.NEW
        self._error: Exception | None = None
        self._ended = threading.Event()  # stopped, or a stream failed for good
        self._stopped = threading.Event()
        self._producers: dict[str, ProducerEntry] = {}
        self._streams: dict[str, StreamEntry] = {}
        self._watch = ConnectionWatch(client)
        try:
            for name, spec in producer_specs.items():
                self._producers[name] = build_producer(client, name, spec)
            for name, stream in {**consumer_specs, **reader_specs}.items():
                self._streams[name] = build_stream(client, name, stream, self._producers, self)
        except BaseException:
            self._release()
            raise
        self._monitor = Monitor(
            list(self._streams.values()), list(self._producers.values()), self._watch, self._failed
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_dir: str | Path | None = None) -> App:
        """An app from a dict shaped like the TOML file (see :meth:`from_toml`).

        Args:
            data: ``url``, ``token`` or ``token_file``, ``[client]``, ``[producers.NAME]``,
                ``[consumers.NAME]`` and ``[readers.NAME]`` tables; handlers and schemas are
                import paths ``"module:attribute"``.
            base_dir: where a relative ``token_file`` is; the current directory by default.

        Raises:
            ConfigurationError: naming the setting that is wrong (``consumers.billing:
                unknown setting 'concurency'``).
        """
        from rxstargate.service._loading import app_arguments

        return cls(**app_arguments(data, Path(base_dir) if base_dir is not None else Path()))

    @classmethod
    def from_toml(cls, path: str | Path) -> App:
        """An app from a TOML file (Python's ``tomllib``).

        ``url`` defaults to ``$RXSTARGATE_URL``; the token is ``token``, else the file named
        by ``token_file`` (relative to the TOML file), else ``$RXSTARGATE_TOKEN``.

        Raises:
            ConfigurationError: when the file cannot be read or parsed, or for a bad setting.
        """
        from rxstargate.service._loading import read_toml

        file = Path(path)
        return cls.from_dict(read_toml(file), base_dir=file.parent)

    # -- lookup -------------------------------------------------------------------------------

    def producer(self, name: str) -> Producer[Any]:
        """The producer called ``name``.

        Raises:
            ConfigurationError: when the app has no producer of that name.
        """
        entry = self._producers.get(name)
        if entry is None:
            raise ConfigurationError(
                f"no producer named {name!r} (the app's: {sorted(self._producers)})"
            )
        return entry.producer

    def pipeline(self, name: str) -> Pipeline:
        """The supervised pipeline of the consumer or reader called ``name``.

        Raises:
            ConfigurationError: when the app has no consumer or reader of that name.
        """
        entry = self._streams.get(name)
        if entry is None:
            raise ConfigurationError(
                f"no consumer or reader named {name!r} (the app's: {sorted(self._streams)})"
            )
        return entry.pipeline

    @property
    def state(self) -> AppState:
        """The current state."""
        return self._state

    @property
    def error(self) -> Exception | None:
        """What failed for good, if a stream did."""
        return self._error

    @property
    def ready(self) -> bool:
        """True while running with every consumer and reader connected and nothing failed
        (a producer opens on its first send: one not used yet does not hold this back)."""
        if self._state is not AppState.RUNNING or self._error is not None:
            return False
        return all_connected(self._streams.values(), self._producers.values(), self._watch)

    # -- life -----------------------------------------------------------------------------

    def start(self) -> App:
        """Start every consumer and reader; returns self.

        Raises:
            StargateError: when the app was started before (an app runs once).
        """
        with self._lock:
            if self._state is not AppState.NEW:
                raise StargateError(f"the app is {self._state}: an app runs once")
            self._state = AppState.RUNNING
        self._monitor.start()
        emit(
            logging.INFO,
            "starting",
            "starting %d consumer(s), %d reader(s), %d producer(s)",
            len(self.consumers),
            len(self.readers),
            len(self.producers),
        )
        try:
            for entry in self._streams.values():
                entry.pipeline.start()
                _log_started(entry)
        except BaseException:
            self.stop(0)
            raise
        return self

    def stop(self, timeout: float | timedelta = 10.0) -> None:
        """Drain and close: no new messages, work in hand finished and settled within
        ``timeout`` seconds (what is left then is redelivered later), producers flushed,
        sockets closed. Safe from any thread, in any state; a second call waits for the first.
        From one of the app's own handlers it begins the stop and returns at once (the drain
        waits for that call, which is then settled as usual).

        Raises:
            ConfigurationError: for a ``timeout`` that is not seconds.
        """
        seconds = checked_seconds(timeout, "timeout", zero=True)
        if HANDLING.get() is self:  # the drain would wait for the very call making it
            threading.Thread(
                target=self.stop, args=(seconds,), name="rxstargate-app-stop", daemon=True
            ).start()
            return
        deadline = time.monotonic() + seconds
        with self._lock:
            state = self._state
            if state in (AppState.NEW, AppState.RUNNING):
                self._state = AppState.STOPPING
        if state is AppState.NEW:
            self._release()
            return
        if state is not AppState.RUNNING:
            self._stopped.wait(seconds)
            return
        emit(logging.INFO, "stopping", "stopping: draining within %.1f s", seconds)
        _stop_pipelines(self._streams.values(), deadline)
        _flush_producers(self._producers.values(), deadline)
        self._monitor.stop()
        self._release()
        emit(logging.INFO, "stopped", "stopped")

    def _release(self) -> None:
        """Close what the app opened (its client, or else its producers); state STOPPED."""
        self._watch.detach()
        if self._owns_client:
            self.client.close()
        else:
            for entry in self._producers.values():
                entry.producer.close()
        with self._lock:
            self._state = AppState.STOPPED
        self._ended.set()
        self._stopped.set()

    def wait(self, timeout: float | timedelta | None = None) -> None:
        """Block until the app is stopped, or one of its streams failed for good.

        Raises:
            StargateError: when the app was never started.
            StargateTimeoutError: when it still runs after ``timeout`` seconds.
            Exception: the error of the stream that failed for good.
        """
        seconds = None if timeout is None else checked_seconds(timeout, "timeout", zero=True)
        if self._state is AppState.NEW:
            raise StargateError("wait() on an app that was never started: start() it first")
        if not self._ended.wait(seconds):
            raise StargateTimeoutError(f"the app is still {self._state} after {seconds} s")
        if self._error is not None:
            raise self._error

    def _failed(self, name: str, error: Exception) -> None:
        with self._lock:
            if self._error is not None or self._state is not AppState.RUNNING:
                return
            self._error = error
        self._ended.set()

    def metrics(self) -> AppMetrics:
        """The counters of every stream and producer now (see :class:`AppMetrics`)."""
        return AppMetrics(
            {name: stream_figures(entry, self._watch) for name, entry in self._streams.items()},
            {name: producer_figures(p, self._watch) for name, p in self._producers.items()},
            self.ready,
            1,
        )

    def __enter__(self) -> App:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"App({self._state}, producers={sorted(self._producers)},"
            f" consumers={sorted(self.consumers)}, readers={sorted(self.readers)})"
        )


def _log_started(entry: StreamEntry) -> None:
    spec = entry.spec
    if isinstance(spec, ConsumerSpec):
        where = f"{entry.endpoint[1]} [{spec.subscription}, {spec.subscription_type}]"
    else:
        where = f"{entry.endpoint[1]} from {spec.start}"
    emit(
        logging.INFO,
        "started",
        "%s %s started on %s",
        entry.kind,
        entry.name,
        where,
        stream=entry.name,
        kind=entry.kind,
    )


def _stop_pipelines(streams: Iterable[StreamEntry], deadline: float) -> None:
    """Stop every pipeline at once (each drains in parallel), by ``deadline``."""
    stoppers = [
        threading.Thread(
            target=entry.pipeline.stop,
            args=(max(0.0, deadline - time.monotonic()),),
            name=f"rxstargate-app-stop-{entry.name}",
            daemon=True,
        )
        for entry in streams
    ]
    for thread in stoppers:
        thread.start()
    for thread in stoppers:
        thread.join(max(0.0, deadline - time.monotonic()) + 1.0)


def _flush_producers(producers: Iterable[ProducerEntry], deadline: float) -> None:
    """Wait for every producer's pending acks, by ``deadline``."""
    for entry in producers:
        try:
            entry.producer.flush(max(0.001, deadline - time.monotonic()))
        except StargateError as exc:
            emit(
                logging.WARNING,
                "unflushed",
                "producer %s: %s",
                entry.name,
                exc,
                stream=entry.name,
                kind="producer",
            )
