"""Pipelines as services: ``rs.App`` (named streams from one configuration) and its metrics.

``rs.App`` is stargate's top-level supervisor and registry: producers, consumers and readers
described by specs (in code, a dict or a TOML file), started and drained together, each found
by name. ``rxstargate run`` runs one in the foreground or as worker processes
(:mod:`rxstargate.service.command`).
"""

import typing as _typing

from rxstargate._lazy import lazy_attributes as _lazy_attributes

# Imported on first use: ``rxstargate run``'s parser (rxstargate.service.command) needs none
# of the machinery.
if _typing.TYPE_CHECKING:
    from rxstargate.service._app import App, AppState
    from rxstargate.service._metrics import (
        DURATION_BUCKETS,
        AppMetrics,
        Durations,
        ProducerMetrics,
        StreamMetrics,
    )
    from rxstargate.service._specs import ConsumerSpec, ProducerSpec, ReaderSpec
else:
    __getattr__, __dir__ = _lazy_attributes(
        __name__,
        {
            "rxstargate.service._app": ("App", "AppState"),
            "rxstargate.service._metrics": (
                "DURATION_BUCKETS",
                "AppMetrics",
                "Durations",
                "ProducerMetrics",
                "StreamMetrics",
            ),
            "rxstargate.service._specs": ("ConsumerSpec", "ProducerSpec", "ReaderSpec"),
        },
    )

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
