"""HTTP statuses for broker errors during producer/consumer/reader creation, as Pulsar maps them."""

from __future__ import annotations

_STATUS_BY_ERROR = {
    "AuthenticationError": 401,
    "AuthorizationError": 403,
    "TopicNotFound": 404,
    "ProducerBusy": 409,
    "ConsumerBusy": 409,
    "ProducerFenced": 409,
    "IncompatibleSchema": 409,
    "TooManyLookupRequestException": 429,
    "ProducerBlockedQuotaExceededError": 503,
    "ProducerBlockedQuotaExceededException": 503,
    "TopicTerminated": 503,
    "Timeout": 504,
}


def creation_status(exc: BaseException) -> int:
    """The status Pulsar's WebSocket service answers when creating a producer/consumer failed."""
    return _STATUS_BY_ERROR.get(type(exc).__name__, 500)


def creation_reason(what: str, exc: BaseException) -> str:
    """``Failed to create <what>: <detail>``."""
    detail = str(exc) or type(exc).__name__
    return f"Failed to create {what}: {detail}"


class Refusal(Exception):
    """A handshake to refuse with an HTTP status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
