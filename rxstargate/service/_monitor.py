"""Watching a running App: one log line per event of each named stream, and failures noticed.

Events are log records of the ``rxstargate.app`` logger whose ``extra`` names the ``event``,
the ``stream`` and its ``kind`` (``rxstargate run --log-format json`` prints them as fields).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rxstargate.pipeline import PipelineState
from rxstargate.service._build import ProducerEntry, StreamEntry
from rxstargate.service._connections import ConnectionWatch

__all__ = ["Monitor", "emit"]

log = logging.getLogger("rxstargate.app")

#: How often the monitor looks at the streams, in seconds.
TICK = 0.2


def emit(level: int, event: str, message: str, *args: object, **fields: Any) -> None:
    """Log one event: ``message % args``, with ``event`` and ``fields`` as the record's extras."""
    log.log(level, message, *args, extra={"event": event, **fields})


class Monitor:
    """A thread that notices what happens to an App's streams and logs it, once per change.

    ``on_failure(name, error)`` is called once for a stream that failed for good.
    """

    def __init__(
        self,
        streams: Sequence[StreamEntry],
        producers: Sequence[ProducerEntry],
        watch: ConnectionWatch,
        on_failure: Callable[[str, Exception], None],
    ) -> None:
        self._streams = streams
        self._producers = producers
        self._watch = watch
        self._on_failure = on_failure
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="rxstargate-app-monitor", daemon=True
        )

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Look one last time, then stop the thread and wait for it."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.check()

    def _run(self) -> None:
        while not self._stop.wait(TICK):
            try:
                self.check()
            except Exception:  # never let the watcher die silently
                log.exception("the app's monitor failed to look at its streams")

    def check(self) -> None:
        """Compare each stream with what was seen last, and log what changed."""
        for stream in self._streams:
            self._check_stream(stream)
        for producer in self._producers:
            self._check_producer(producer)

    def _check_stream(self, stream: StreamEntry) -> None:
        pipeline = stream.pipeline
        state, restarts = pipeline.state, pipeline.restarts
        connected = self._watch.open_now(stream.endpoint) > 0
        now = (state, restarts, connected)
        before = self._seen.get(stream.name, (PipelineState.NEW, 0, False))
        if now == before:
            return
        self._seen[stream.name] = now
        if connected != before[2] and state in (PipelineState.RUNNING, PipelineState.RESTARTING):
            if connected:
                _tell(stream, logging.INFO, "connected", "connected")
            else:
                _tell(stream, logging.WARNING, "disconnected", "lost its connection")
        if state is before[0] and restarts == before[1]:
            return
        if state is PipelineState.RESTARTING and before[0] is not PipelineState.RESTARTING:
            _tell(stream, logging.WARNING, "restarting", "failed; restarting it")
        elif restarts != before[1] and state is PipelineState.RUNNING:
            _tell(
                stream,
                logging.INFO,
                "restarted",
                "restarted (restarts so far: %d)",
                restarts,
                restarts=restarts,
            )
        elif state is PipelineState.FAILED:
            error = pipeline.error
            _tell(stream, logging.ERROR, "failed", "failed for good: %r", error, error=repr(error))
            self._on_failure(stream.name, error or RuntimeError(f"{stream.name} failed"))
        elif state is PipelineState.STOPPED:
            _tell(stream, logging.INFO, "stopped", "stopped")

    def _check_producer(self, producer: ProducerEntry) -> None:
        connected = self._watch.open_now(producer.endpoint) > 0
        error = producer.error
        now = (connected, error is not None)
        before = self._seen.get("\0" + producer.name, (False, False))
        if now == before:
            return
        self._seen["\0" + producer.name] = now
        fields = {"stream": producer.name, "kind": "producer"}
        if error is not None and not before[1]:
            emit(
                logging.ERROR,
                "failed",
                "producer %s failed for good: %r",
                producer.name,
                error,
                error=repr(error),
                **fields,
            )
            self._on_failure(producer.name, error)
        elif connected and not before[0]:
            emit(logging.INFO, "connected", "producer %s connected", producer.name, **fields)
        elif before[0] and not connected and error is None:
            emit(
                logging.INFO,
                "disconnected",
                "producer %s has no socket open",
                producer.name,
                **fields,
            )


def _tell(
    stream: StreamEntry, level: int, event: str, text: str, *args: object, **fields: Any
) -> None:
    """Log ``event`` of ``stream``: "consumer billing " + ``text % args``."""
    emit(
        level,
        event,
        f"%s %s {text}",
        stream.kind,
        stream.name,
        *args,
        stream=stream.name,
        kind=stream.kind,
        **fields,
    )
