"""From an App's specs to its producers and supervised pipelines; nothing connects yet.

Everything goes through the calls a user would make (``topic.producer``, ``topic.consume``),
so a bad option is refused with the very error those give, prefixed with the stream's name.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema

from rxstargate._producer import Producer
from rxstargate.client import Client
from rxstargate.exceptions import ConfigurationError, InvalidOptionError
from rxstargate.models import Message, ProducerAck
from rxstargate.operators import MessageHandler, dead_letter
from rxstargate.pipeline import Pipeline
from rxstargate.service._connections import Endpoint, endpoint
from rxstargate.service._handlers import Handler, HandlerCounters, instrument
from rxstargate.service._imports import resolve
from rxstargate.service._specs import ConsumerSpec, ProducerSpec, ReaderSpec

__all__ = ["ProducerEntry", "StreamEntry", "build_producer", "build_stream", "named"]


@dataclass(eq=False)
class ProducerEntry:
    """A producer of the app and its ack counters (fed by its ``acks`` stream)."""

    name: str
    spec: ProducerSpec
    producer: Producer[Any]
    endpoint: Endpoint
    acks: int = 0
    failures: int = 0
    error: Exception | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_ack(self, ack: ProducerAck) -> None:
        with self.lock:
            if ack.ok:
                self.acks += 1
            else:
                self.failures += 1

    def on_error(self, error: Exception) -> None:
        with self.lock:
            self.error = error


@dataclass(eq=False)
class StreamEntry:
    """A consumer or reader of the app: its supervised pipeline and what its handler measures."""

    name: str
    kind: str
    spec: ConsumerSpec | ReaderSpec
    pipeline: Pipeline
    counters: HandlerCounters
    endpoint: Endpoint


@contextlib.contextmanager
def named(where: str) -> Iterator[None]:
    """Re-raise a ConfigurationError (same class) with ``where`` in front of its message."""
    try:
        yield
    except InvalidOptionError as exc:
        raise InvalidOptionError(f"{where}: {exc}", exc.messages) from None
    except ConfigurationError as exc:
        try:
            renamed = type(exc)(f"{where}: {exc}")
        except Exception:  # a subclass with another constructor
            renamed = ConfigurationError(f"{where}: {exc}")
        raise renamed from exc.__cause__


def _schema(value: Any, what: str) -> Schema | None:
    if isinstance(value, str):
        value = resolve(value, what)
    if isinstance(value, type) and issubclass(value, Schema):
        value = value()
    if value is not None and not isinstance(value, Schema):
        raise ConfigurationError(f"{what} must be a marshmallow Schema, not {value!r:.80}")
    return value


def resolve_handler(ref: Any, what: str) -> Handler:
    """The handler ``ref`` stands for: itself, the object its import path names, or an
    instance of the MessageHandler subclass it is.

    Raises:
        ConfigurationError: naming ``what``, when it cannot be imported or is no handler.
    """
    value = resolve(ref, what) if isinstance(ref, str) else ref
    if isinstance(value, type) and issubclass(value, MessageHandler):
        try:
            value = value()
        except Exception as exc:
            raise ConfigurationError(
                f"{what}: {value.__name__}() failed: {type(exc).__name__}: {exc}"
            ) from exc
    if not (isinstance(value, MessageHandler) or callable(value)):
        raise ConfigurationError(
            f"{what}: {ref!r:.80} is a {type(value).__name__}, not a callable or a MessageHandler"
        )
    handler: Handler = value
    return handler


def build_producer(client: Client, name: str, spec: ProducerSpec) -> ProducerEntry:
    """The producer ``spec`` describes (its socket opens on the first send)."""
    with named(f"producer {name!r}"):
        producer = client.topic(spec.topic).producer(
            schema=_schema(spec.schema, "schema"),
            max_in_flight=spec.max_in_flight,
            timeout=spec.timeout,
            **spec.options,
        )
    entry = ProducerEntry(name, spec, producer, endpoint("producer", spec.topic))
    producer.acks.subscribe(entry.on_ack, entry.on_error)
    return entry


def _producer(
    producers: Mapping[str, ProducerEntry], wanted: str | None, setting: str
) -> Producer[Any] | None:
    if wanted is None:
        return None
    if wanted not in producers:
        raise ConfigurationError(
            f"{setting}={wanted!r} is not one of the app's producers ({sorted(producers)})"
        )
    return producers[wanted].producer


def build_stream(
    client: Client,
    name: str,
    spec: ConsumerSpec | ReaderSpec,
    producers: Mapping[str, ProducerEntry],
    owner: object = None,
) -> StreamEntry:
    """The supervised pipeline ``spec`` describes (not started); its handler's calls run with
    ``HANDLING`` set to ``owner``."""
    kind = "consumer" if isinstance(spec, ConsumerSpec) else "reader"
    with named(f"{kind} {name!r}"):
        handler = resolve_handler(spec.handler, "handler")
        publish_to = _producer(producers, spec.publish_to, "publish_to")
        dead_letters = _producer(producers, spec.dead_letter_to, "dead_letter_to")
        on_failure: Any = spec.on_failure or "nack"
        if dead_letters is not None:
            on_failure = dead_letter(dead_letters)
        options = dict(spec.options)
        if "schema" in options:
            options["schema"] = _schema(options["schema"], "schema")
        counters = HandlerCounters(owner)
        wrapped = instrument(handler, counters, publish_to)
        topic = client.topic(spec.topic)
        processing = {"timeout": spec.timeout, "retry": spec.retry, "on_failure": on_failure}
        if isinstance(spec, ConsumerSpec):
            pipeline = topic.consume(
                spec.subscription,
                wrapped,
                concurrency=spec.concurrency,
                key_ordered=spec.key_ordered,
                subscription_type=spec.subscription_type,
                max_in_flight=spec.max_in_flight,
                restart=spec.restart,
                **processing,
                **options,
            )
            where = endpoint("consumer", spec.topic, spec.subscription)
        else:
            topic.observe(start=spec.start, max_in_flight=spec.max_in_flight, **options)

            def source() -> Any:  # after a restart: on from the last message handled
                last: Message[Any] | None = counters.last_finished
                start = spec.start if last is None else last.message_id
                return topic.observe(start=start, max_in_flight=spec.max_in_flight, **options)

            pipeline = Pipeline(source, wrapped, restart=spec.restart, **processing)
            where = endpoint("reader", spec.topic)
    return StreamEntry(name, kind, spec, pipeline, counters, where)
