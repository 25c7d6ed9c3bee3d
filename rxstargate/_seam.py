"""The transport seam: what the client's drivers need of a socket, and how one is opened.

The producer, the receiving sessions, the settler and the keepalive type against
:class:`Transport`; a :class:`~rxstargate.client.ClientContext` opens each socket with its
:data:`Connector`. The client's I/O loop (:class:`~rxstargate._ioloop.IOLoop`, whose
connections are also :class:`PushTransport`) is the default; websocket-client's
:class:`~rxstargate._transport.Connection` (a receive and a writer thread per socket) and
:class:`rxstargate.testing.MemoryPulsar` (no socket at all) are others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from rxstargate._config import TransportConfig
from rxstargate.exceptions import ConnectionClosedError
from rxstargate.models import MessageId, TopicName

__all__ = [
    "AdminConnector",
    "Connector",
    "LostCallback",
    "PushTransport",
    "Transport",
    "close_error",
]

#: Called with the frame and the reason when a queued frame could not be written: one callback
#: can serve many frames, so a sender need not make an object for each.
LostCallback = Callable[[str | bytes, str], None]

#: Close codes after which reconnecting is pointless (policy violation, bad data).
FATAL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009, 1010})


class Transport(Protocol):
    """One open WebSocket to Pulsar's WebSocket API, past its handshake.

    The owner's receive thread calls :meth:`recv` (or :meth:`recv_batch`); any thread calls
    :meth:`send`, which only queues. A transport ends with a
    :class:`~rxstargate.ConnectionClosedError` from ``recv`` (the server closed it, it dropped,
    a pong or a write was late) or with ``recv`` returning None after :meth:`close` or
    :meth:`abort`.

    Attributes:
        on_closed: called once with the transport when it is aborted (the keepalive uses it
            to forget the transport).
    """

    on_closed: Callable[[Transport], None] | None

    @property
    def url(self) -> str:
        """The endpoint's URL, without credentials (for logs and errors)."""

    @property
    def closed(self) -> bool:
        """True once :meth:`close`, :meth:`abort` or :meth:`drop` was called."""

    def send(
        self, text: str | bytes, *, urgent: bool = True, on_lost: LostCallback | None = None
    ) -> None:
        """Queue one text frame; returns at once, from any thread, never blocks.

        ``urgent`` frames leave as soon as possible; lazy ones (acks, permits) may wait a
        couple of milliseconds to leave together. ``on_lost`` is called once with ``text`` and the
        reason if the frame never reaches the server.

        Raises:
            StargateConnectionError: when the transport is closing or gone.
        """

    def recv(self) -> str | None:
        """The next text frame, or None after :meth:`close` or :meth:`abort`.

        Raises:
            ConnectionClosedError: when the server closed the socket or it dropped.
        """

    def recv_batch(self) -> list[str] | None:
        """Every text frame already received, waiting only when there is none; None once
        closed. Same errors as :meth:`recv`."""

    def keepalive(self, now: float) -> None:
        """Called about every tick with ``time.monotonic()``: ping when idle, drop when a
        ping went unanswered. A transport with no network may do nothing."""

    def drop(self, reason: str) -> None:
        """Declare the transport broken from any thread: ``recv`` raises ConnectionClosedError."""

    def close(self) -> None:
        """Begin a graceful close from any thread: queued frames go first; returns at once."""

    def abort(self) -> None:
        """End the transport at once from any thread; queued frames are reported lost."""

    def wait_written(self, deadline: float) -> bool:
        """After :meth:`close`: wait until everything queued was written (or ``deadline``,
        a ``time.monotonic()`` value); True when it was."""

    def release(self) -> None:
        """Free everything the transport holds; the receive thread calls it at the end."""


@runtime_checkable
class PushTransport(Protocol):
    """A :class:`Transport` that also reads by itself and hands frames over by calling back.

    Its owner then needs no thread to wait on the socket (the I/O loop's connections).
    """

    def deliver_to(
        self,
        on_frames: Callable[[list[str]], None],
        on_end: Callable[[ConnectionClosedError | None], None],
    ) -> None:
        """Call ``on_frames`` with each batch of text frames, then ``on_end`` once."""


#: Opens a transport: ``connect(url, config, name)`` completes the handshake within
#: ``config.connect_timeout`` and returns the open :class:`Transport`, or raises a typed
#: :class:`~rxstargate.HandshakeError` (a refused upgrade) or
#: :class:`~rxstargate.StargateConnectionError`. ``name`` names the socket's threads.
Connector = Callable[[str, TransportConfig, str], Transport]


@runtime_checkable
class AdminConnector(Protocol):
    """A :data:`Connector` that also answers the admin API's ``lastMessageId``.

    A client whose connector has this method asks it instead of Pulsar's admin REST API
    (readers from ``latest``, ``topic.last_message_id()``).
    """

    def __call__(self, url: str, config: TransportConfig, name: str) -> Transport:
        """Open a transport (see :data:`Connector`)."""

    def last_message_id(
        self, base_url: str, topic: TopicName, config: TransportConfig
    ) -> MessageId | None:
        """The id of the topic's last stored message, or None when it has none."""


def close_error(code: int | None, reason: str, url: str) -> ConnectionClosedError:
    """The error ``recv`` raises for a close frame from the server.

    ``code`` None is a close frame without status (1005): how Pulsar's numbered errors arrive
    (Jetty sends no status for codes under 1000).
    """
    if code is None:
        return ConnectionClosedError(
            f"{url} closed the socket with no status (1005): a server-side failure", 1005
        )
    if code == 1000:
        text = f"{url} closed the socket normally"
    elif 1 <= code <= 8:
        text = f"{url} closed the socket with Pulsar error {code}: a server-side failure"
    else:
        text = f"{url} closed the socket with code {code}"
    if reason:
        text += f": {reason}"
    error = ConnectionClosedError(text, code, reason)
    if code in FATAL_CLOSE_CODES:
        error.retriable = False
    return error
