"""Cutting handshakes short: found by owner or opener, shut down, never waited for in vain."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from rxstargate import _handshakes


class OpeningSocket:
    """Stands for websocket-client's WebSocket: ``sock`` is None until its connect returns."""

    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock


def _no_polling(*_: Any) -> None:
    raise AssertionError("cut_short waited for a socket")


def test_a_handshake_still_in_tls_is_marked_without_waiting_for_its_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its socket appears only once the TLS handshake is through: a producer's close, then its
    # client's, each waited the whole patience for it, one producer after another.
    monkeypatch.setattr(_handshakes.time, "sleep", _no_polling)
    owner = object()
    with _handshakes.attempt(OpeningSocket(None), owner, tls=True) as attempt:
        _handshakes.cut_short(owner=owner)
        assert attempt.cut


def test_a_handshake_opened_on_behalf_of_something_is_cut_by_it() -> None:
    producer, client = object(), object()
    ours, theirs = socket.socketpair()
    with ours, theirs:
        with (
            _handshakes.on_behalf_of(producer),
            _handshakes.attempt(OpeningSocket(ours), client) as attempt,
        ):
            _handshakes.cut_short(owner=object())  # someone else's: left alone
            assert not attempt.cut
            _handshakes.cut_short(owner=producer)
            assert attempt.cut
        assert theirs.recv(1) == b""  # shut down: the handshake's read ends
