"""The exceptions rxstargate raises, all under one root.

::

    StargateError
    ├── ConfigurationError (also ValueError)
    │   ├── InvalidTopicNameError
    │   └── InvalidOptionError
    ├── StargateConnectionError                       (unreachable host, dropped socket)
    │   └── ConnectionClosedError                     (the server closed the socket)
    ├── HandshakeError              (the server refused the upgrade; has status_code)
    │   ├── BadRequestError            400
    │   ├── AuthenticationError        401
    │   ├── AuthorizationError         403
    │   ├── TopicNotFoundError         404
    │   ├── ConflictError              409  (producer or consumer busy)
    │   ├── TooManyRequestsError       429
    │   └── ServerError                5xx
    ├── ProtocolError                                 (a frame we cannot understand)
    ├── SchemaError                 (a payload does not match the stream's schema)
    ├── SendError                                     (the broker refused or failed one message)
    ├── AckError                                      (a message cannot be settled any more)
    ├── StalledStreamError       (reported: a consumer holds all its credit and settles nothing)
    ├── StargateTimeoutError (also TimeoutError)      (a wait ran out)
    └── ClosedError                                   (the client, producer or stream is closed)

Each class says whether retrying may help (``retriable``); the reconnect logic reads it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AckError",
    "AuthenticationError",
    "AuthorizationError",
    "BadRequestError",
    "ClosedError",
    "ConfigurationError",
    "ConflictError",
    "ConnectionClosedError",
    "HandshakeError",
    "InvalidOptionError",
    "InvalidTopicNameError",
    "ProtocolError",
    "SchemaError",
    "SendError",
    "ServerError",
    "StalledStreamError",
    "StargateConnectionError",
    "StargateError",
    "StargateTimeoutError",
    "TooManyRequestsError",
    "TopicNotFoundError",
    "handshake_error_for_status",
]


class StargateError(Exception):
    """Root of every error rxstargate raises."""

    retriable: bool = False


class ConfigurationError(StargateError, ValueError):
    """Raised when an argument is wrong, before any network traffic."""


class InvalidTopicNameError(ConfigurationError):
    """Raised when a topic name cannot be parsed; the message says which part is wrong."""


class InvalidOptionError(ConfigurationError):
    """Raised when a producer, consumer or reader option is unknown or has a bad value.

    Attributes:
        messages: marshmallow's structured messages, option name -> list of problems.
    """

    def __init__(self, message: str, messages: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.messages = messages or {}


class StargateConnectionError(StargateError):
    """Raised when a socket cannot be opened or drops; retrying may help."""

    retriable = True


class ConnectionClosedError(StargateConnectionError):
    """Raised when the server closes the socket.

    Attributes:
        code: the WebSocket close code (1005 when the frame had none, which is how
            Pulsar's numbered errors arrive), or None when the socket just dropped.
        reason: the close reason text, possibly empty.
    """

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class HandshakeError(StargateError):
    """Raised when the server refuses the WebSocket upgrade.

    Attributes:
        status_code: the HTTP status of the refusal.
        reason: the server's explanation (from the response body), possibly empty.
        url: the URL that was refused, with any token removed.
    """

    def __init__(self, status_code: int, reason: str = "", url: str = "") -> None:
        text = f"HTTP {status_code}"
        if reason:
            text += f": {reason}"
        if url:
            text += f" ({url})"
        super().__init__(text)
        self.status_code = status_code
        self.reason = reason
        self.url = url

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle and copy rebuild an exception from its args, which here are the message.
        return type(self), (self.status_code, self.reason, self.url), self.__dict__


class BadRequestError(HandshakeError, ValueError):
    """Raised on 400: a path or query parameter the server refused."""


class AuthenticationError(HandshakeError):
    """Raised on 401: missing or wrong credentials."""


class AuthorizationError(HandshakeError):
    """Raised on 403: the credentials lack the permission."""


class TopicNotFoundError(HandshakeError):
    """Raised on 404: the topic (or its namespace) does not exist and cannot be created."""


class ConflictError(HandshakeError):
    """Raised on 409: a producer name is taken or an Exclusive subscription has its consumer."""

    retriable = True


class TooManyRequestsError(HandshakeError):
    """Raised on 429: the broker throttles lookups."""

    retriable = True


class ServerError(HandshakeError):
    """Raised on 5xx: the server failed to create the producer, consumer or reader."""

    retriable = True


class ProtocolError(StargateError):
    """Raised when a frame from the server cannot be understood."""


class SchemaError(StargateError):
    """Reported when a received payload does not match the stream's schema (it is nacked).

    Attributes:
        message_id: the wire id of the message, or None.
    """

    def __init__(self, message: str, message_id: str | None = None) -> None:
        super().__init__(message)
        self.message_id = message_id


class SendError(StargateError):
    """Raised when the broker refused or failed one message.

    Attributes:
        result: Pulsar's result string, such as ``send-error:8``.
        context: the context id of the failed message.
    """

    def __init__(self, message: str, result: str = "", context: str | None = None) -> None:
        super().__init__(message)
        self.result = result
        self.context = context


class AckError(StargateError):
    """Raised when a message can no longer be acknowledged (its socket is gone)."""


class StalledStreamError(StargateError):
    """Reported on ``client.errors`` when a consumer held all its credit and settled nothing.

    The stream is not ended: it resumes as soon as something settles. The usual cause is a
    stage that neither settles messages nor passes them on (a ``filter`` that drops without
    acking, a buffer bigger than ``max_in_flight``).

    Attributes:
        topic: the topic of the stalled stream.
        held: how many messages it holds unsettled.
    """

    def __init__(self, message: str, topic: str = "", held: int = 0) -> None:
        super().__init__(message)
        self.topic = topic
        self.held = held


class StargateTimeoutError(StargateError, TimeoutError):
    """Raised when a wait runs out of time."""

    retriable = True


class ClosedError(StargateError):
    """Raised when the client, producer or stream is used after it was closed."""


_BY_STATUS: dict[int, type[HandshakeError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthorizationError,
    404: TopicNotFoundError,
    409: ConflictError,
    429: TooManyRequestsError,
}


def handshake_error_for_status(status_code: int, reason: str = "", url: str = "") -> HandshakeError:
    """The typed handshake error for an HTTP status.

    Example:
        >>> type(handshake_error_for_status(409, "busy")).__name__
        'ConflictError'
    """
    cls = _BY_STATUS.get(status_code)
    if cls is None:
        cls = ServerError if status_code >= 500 else HandshakeError
    return cls(status_code, reason, url)
