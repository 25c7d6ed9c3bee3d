"""The transport seam: what a close frame means, and a client that opens sockets its own way."""

from __future__ import annotations

import pytest

import rxstargate as rs
from rxstargate._seam import close_error


@pytest.mark.parametrize(
    ("code", "reason", "retriable", "text"),
    [
        (None, "", True, "no status (1005)"),
        (1000, "", True, "closed the socket normally"),
        (3, "", True, "Pulsar error 3"),
        (1001, "going away", True, "code 1001: going away"),
        (1009, "too big", False, "code 1009: too big"),
        (1008, "", False, "code 1008"),
    ],
)
def test_a_close_frame_becomes_a_connection_closed_error(
    code: int | None, reason: str, retriable: bool, text: str
) -> None:
    error = close_error(code, reason, "ws://h/ws/v2/x")
    assert isinstance(error, rs.ConnectionClosedError)
    assert error.code == (1005 if code is None else code)
    assert error.retriable is retriable
    assert text in str(error) and "ws://h/ws/v2/x" in str(error)


def test_a_client_opens_every_socket_with_its_connector() -> None:
    opened: list[tuple[str, rs.TransportConfig, str]] = []

    def refuse(url: str, config: rs.TransportConfig, name: str) -> rs.Transport:
        opened.append((url, config, name))
        raise rs.AuthorizationError(403, "not here", url)

    with (
        rs.Client("ws://h:1", token="t0k3n", connect=refuse) as client,
        pytest.raises(rs.AuthorizationError),
    ):
        client.topic("orders").producer().send(b"x")
    ((url, config, name),) = opened
    assert url == "ws://h:1/ws/v2/producer/persistent/public/default/orders"
    assert (config.token, name) == ("t0k3n", "orders")
