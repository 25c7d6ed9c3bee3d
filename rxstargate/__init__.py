"""rxstargate: Apache Pulsar's WebSocket API as ReactiveX streams."""

from rxstargate._config import TlsOptions, TransportConfig
from rxstargate._producer import Producer
from rxstargate._reconnect import Backoff
from rxstargate._seam import Connector, Transport
from rxstargate._version import __version__ as __version__
from rxstargate.client import Client, Topic, Topics
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
from rxstargate.options import (
    CompressionType,
    CryptoFailureAction,
    HashingScheme,
    InitialPosition,
    MessageRoutingMode,
    SubscriptionMode,
    SubscriptionType,
)
from rxstargate.pipeline import Pipeline, PipelineState
from rxstargate.service import App, ConsumerSpec, ProducerSpec, ReaderSpec
from rxstargate.sinks import Acknowledger, acknowledger
from rxstargate.streams import Stream, StreamHandle

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
