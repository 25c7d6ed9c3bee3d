"""rxstargate: Apache Pulsar's WebSocket API as ReactiveX streams.

The exceptions are imported with the package; every other public name (and the public
modules: ``rs.operators``, ``rs.service``, ...) the first time it is used, so that
``import rxstargate`` and the ``rxstargate`` command start without the client's machinery.
"""

import typing as _typing

from rxstargate._lazy import lazy_attributes as _lazy_attributes
from rxstargate._version import __version__ as __version__
from rxstargate.exceptions import (
    AckError,
    AuthenticationError,
    AuthorizationError,
    BadRequestError,
    ClosedError,
    ConfigurationError,
    ConflictError,
    ConnectionClosedError,
    HandshakeError,
    InvalidOptionError,
    InvalidTopicNameError,
    ProtocolError,
    SchemaError,
    SendError,
    ServerError,
    StalledStreamError,
    StargateConnectionError,
    StargateError,
    StargateTimeoutError,
    TooManyRequestsError,
    TopicNotFoundError,
)

if _typing.TYPE_CHECKING:
    from rxstargate import client as client
    from rxstargate import models as models
    from rxstargate import notebook as notebook
    from rxstargate import operators as operators
    from rxstargate import options as options
    from rxstargate import pipeline as pipeline
    from rxstargate import service as service
    from rxstargate import sinks as sinks
    from rxstargate import streams as streams
    from rxstargate._config import TlsOptions, TransportConfig
    from rxstargate._option_enums import (
        CompressionType,
        CryptoFailureAction,
        HashingScheme,
        InitialPosition,
        MessageRoutingMode,
        SubscriptionMode,
        SubscriptionType,
    )
    from rxstargate._producer import Producer
    from rxstargate._reconnect import Backoff
    from rxstargate._seam import Connector, Transport
    from rxstargate.client import Client, Topic, Topics
    from rxstargate.models import (
        ClientResult,
        Message,
        MessageId,
        OutgoingMessage,
        Persistence,
        ProducerAck,
        TopicName,
    )
    from rxstargate.notebook import Acks, Messages
    from rxstargate.pipeline import Pipeline, PipelineState
    from rxstargate.service import App, ConsumerSpec, ProducerSpec, ReaderSpec
    from rxstargate.sinks import Acknowledger, acknowledger
    from rxstargate.streams import Stream, StreamHandle
else:
    __getattr__, __dir__ = _lazy_attributes(
        __name__,
        {
            "rxstargate._config": ("TlsOptions", "TransportConfig"),
            "rxstargate._option_enums": (
                "CompressionType",
                "CryptoFailureAction",
                "HashingScheme",
                "InitialPosition",
                "MessageRoutingMode",
                "SubscriptionMode",
                "SubscriptionType",
            ),
            "rxstargate._producer": ("Producer",),
            "rxstargate._reconnect": ("Backoff",),
            "rxstargate._seam": ("Connector", "Transport"),
            "rxstargate.client": ("Client", "Topic", "Topics"),
            "rxstargate.models": (
                "ClientResult",
                "Message",
                "MessageId",
                "OutgoingMessage",
                "Persistence",
                "ProducerAck",
                "TopicName",
            ),
            "rxstargate.notebook": ("Acks", "Messages"),
            "rxstargate.pipeline": ("Pipeline", "PipelineState"),
            "rxstargate.service": ("App", "ConsumerSpec", "ProducerSpec", "ReaderSpec"),
            "rxstargate.sinks": ("Acknowledger", "acknowledger"),
            "rxstargate.streams": ("Stream", "StreamHandle"),
        },
        # Imported with the package before its names became lazy: still there on first use.
        submodules=(
            "client",
            "models",
            "notebook",
            "operators",
            "options",
            "pipeline",
            "service",
            "sinks",
            "streams",
        ),
    )

__all__ = [
    "AckError",
    "Acknowledger",
    "Acks",
    "App",
    "AuthenticationError",
    "AuthorizationError",
    "Backoff",
    "BadRequestError",
    "Client",
    "ClientResult",
    "ClosedError",
    "CompressionType",
    "ConfigurationError",
    "ConflictError",
    "ConnectionClosedError",
    "Connector",
    "ConsumerSpec",
    "CryptoFailureAction",
    "HandshakeError",
    "HashingScheme",
    "InitialPosition",
    "InvalidOptionError",
    "InvalidTopicNameError",
    "Message",
    "MessageId",
    "MessageRoutingMode",
    "Messages",
    "OutgoingMessage",
    "Persistence",
    "Pipeline",
    "PipelineState",
    "Producer",
    "ProducerAck",
    "ProducerSpec",
    "ProtocolError",
    "ReaderSpec",
    "SchemaError",
    "SendError",
    "ServerError",
    "StalledStreamError",
    "StargateConnectionError",
    "StargateError",
    "StargateTimeoutError",
    "Stream",
    "StreamHandle",
    "SubscriptionMode",
    "SubscriptionType",
    "TlsOptions",
    "TooManyRequestsError",
    "Topic",
    "TopicName",
    "TopicNotFoundError",
    "Topics",
    "Transport",
    "TransportConfig",
    "acknowledger",
]
