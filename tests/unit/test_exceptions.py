"""The exception tree: one root, typed handshake errors, ValueError for configuration."""

from __future__ import annotations

import copy
import pickle

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


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 429, 500, 418])
def test_a_handshake_error_keeps_its_message_through_pickle_and_copy(status: int) -> None:
    # A process pool or a copy rebuilt it from its one-line message as the status: "HTTP HTTP 403"
    error = exc.handshake_error_for_status(status, "the reason", "ws://h/ws/v2/x")
    error.add_note("a note")
    for again in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert type(again) is type(error)
        assert str(again) == str(error) == f"HTTP {status}: the reason (ws://h/ws/v2/x)"
        assert (again.status_code, again.reason, again.url) == (status, "the reason", error.url)
        assert again.__notes__ == ["a note"]


@pytest.mark.parametrize(
    "error",
    [
        exc.StargateError("boom"),
        exc.InvalidOptionError("bad option", {"x": ["wrong"]}),
        exc.ConnectionClosedError("closed", 1005, "why"),
        exc.SchemaError("no match", "CAAQAA=="),
        exc.SendError("refused", "send-error:8", "7"),
        exc.StalledStreamError("stalled", "t", 3),
        exc.StargateTimeoutError("late"),
    ],
)
def test_every_other_error_keeps_its_message_and_attributes_through_pickle(
    error: exc.StargateError,
) -> None:
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert vars(again) == vars(error)
