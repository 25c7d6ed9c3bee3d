"""Pipelines as services: ``rs.App`` (named streams from one configuration) and its metrics.

``rs.App`` is stargate's top-level supervisor and registry: producers, consumers and readers
described by specs (in code, a dict or a TOML file), started and drained together, each found
by name. ``rxstargate run`` runs one in the foreground or as worker processes
(:mod:`rxstargate.service.command`).
"""

from rxstargate.service._app import App, AppState
from rxstargate.service._metrics import (
    DURATION_BUCKETS,
    AppMetrics,
    Durations,
    ProducerMetrics,
    StreamMetrics,
)
from rxstargate.service._specs import ConsumerSpec, ProducerSpec, ReaderSpec

__all__ = [
    "DURATION_BUCKETS",
    "App",
    "AppMetrics",
    "AppState",
    "ConsumerSpec",
    "Durations",
    "ProducerMetrics",
    "ProducerSpec",
    "ReaderSpec",
    "StreamMetrics",
]
