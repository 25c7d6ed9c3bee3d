"""The exception tree: one root, typed handshake errors, ValueError for configuration."""

from __future__ import annotations

import pytest

from rxstargate import exceptions as exc


@pytest.mark.parametrize(
    ("status", "cls", "retriable"),
    [
        (400, exc.BadRequestError, False),
        (401, exc.AuthenticationError, False),
        (403, exc.AuthorizationError, False),
        (404, exc.TopicNotFoundError, False),
        (409, exc.ConflictError, True),
        (429, exc.TooManyRequestsError, True),
        (500, exc.ServerError, True),
        (503, exc.ServerError, True),
        (418, exc.HandshakeError, False),
    ],
)
def test_status_maps_to_a_typed_error(status: int, cls: type, retriable: bool) -> None:
    error = exc.handshake_error_for_status(status, "the reason", "ws://h/ws/v2/x")
    assert type(error) is cls
    assert error.status_code == status
    assert error.reason == "the reason"
    assert error.retriable is retriable
    assert "the reason" in str(error)
    assert str(status) in str(error)
    assert isinstance(error, exc.StargateError)


def test_configuration_errors_are_value_errors() -> None:
    assert issubclass(exc.InvalidTopicNameError, ValueError)
    assert issubclass(exc.InvalidOptionError, ValueError)
    assert issubclass(exc.BadRequestError, ValueError)


def test_timeouts_are_builtin_timeouts_too() -> None:
    assert issubclass(exc.StargateTimeoutError, TimeoutError)


def test_every_exported_error_derives_from_the_root() -> None:
    for name in exc.__all__:
        obj = getattr(exc, name)
        if isinstance(obj, type):
            assert issubclass(obj, exc.StargateError), name
            assert name.endswith("Error"), name


def test_all_is_sorted() -> None:
    assert list(exc.__all__) == sorted(exc.__all__)
