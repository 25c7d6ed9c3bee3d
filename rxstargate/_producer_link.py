"""A producer's socket: opened by the first send, read by its receive thread, reopened after drops.

The receive thread ("rxstargate-producer-<topic>") only reads: it hands each batch of frames to
the producer (of user code, it runs only ``client.errors`` observers, for what it reports).
After a dropped connection it reopens with the client's backoff and writes every pending
message again, with its original context id, before anything newer (the producing core says
which, under the producer's lock).

A transport that reads by itself (the I/O loop's ``deliver_to``) hands the frames over on its
own thread: the producer then has a receive thread only while it reopens after a drop.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from rxstargate import _handshakes
from rxstargate._context import ClientContext
from rxstargate._produce_state import ProduceState
from rxstargate._reconnect import reconnect
from rxstargate._seam import PushTransport, Transport
from rxstargate.exceptions import (
    ConnectionClosedError,
    ProtocolError,
    StargateConnectionError,
    StargateError,
)
from rxstargate.models import TopicName

__all__ = ["ProducerLink", "renewed"]

log = logging.getLogger("rxstargate.producer")

E = TypeVar("E", bound=BaseException)


def renewed(error: E) -> E:
    """A new exception like ``error`` (same type, message and attributes), caused by it.

    Raising one stored exception again and again would grow its traceback with every raise.

    Example:
        >>> first = ConnectionClosedError("gone", 1008, "policy")
        >>> again = renewed(first)
        >>> (type(again).__name__, str(again), again.code, again.__cause__ is first, again is first)
        ('ConnectionClosedError', 'gone', 1008, True, False)
    """
    cls = type(error)
    copy = cls.__new__(cls)  # no __init__: subclasses build their message from other arguments
    copy.args = error.args
    copy.__dict__.update(error.__dict__)
    copy.__cause__ = error
    return copy


class ProducerLink:
    """The connection of one producer.

    Args:
        context: the client's shared state (opens sockets, backoff).
        url: the producer endpoint.
        topic: the producer's topic.
        lock: the producer's lock, which guards ``state`` and the current connection.
        state: the producing core (told when the connection is lost and reopened).
        received: called on the receive thread with each batch of frames.
        failed: called on the receive thread when the producer cannot go on.
        closed_error: the error for a producer closed while its socket was opening.
    """

    def __init__(
        self,
        context: ClientContext,
        url: str,
        topic: TopicName,
        lock: threading.Lock,
        state: ProduceState[Any],
        received: Callable[[list[str]], None],
        failed: Callable[[StargateError], None],
        closed_error: Callable[[], StargateError],
    ) -> None:
        self._context = context
        self._url = url
        self._topic = topic
        self._lock = lock
        self._state = state
        self._received = received
        self._failed = failed
        self._closed_error = closed_error
        self._open_lock = threading.Lock()
        self._failed_opens = 0
        self._open_failure: StargateError | None = None
        #: True once the socket opened (and is read, or was): a plain attribute, which each
        #: send checks before it calls :meth:`ensure_open`.
        self.started = False
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._ended = threading.Event()  # no socket is open and none will be
        self._conn: Transport | None = None  # guarded by lock

    @property
    def connected(self) -> bool:
        """True while a connection is attached (it may have dropped unnoticed)."""
        return self._conn is not None

    def ensure_open(self) -> None:
        """Open the socket and start the receive thread, once; concurrent callers share it.

        Raises:
            StargateConnectionError: or a HandshakeError, when it cannot be opened (callers
                that waited for that attempt get the same error, renewed, without retrying).
            StargateError: ``closed_error()`` when the producer closed meanwhile.
        """
        if self.started:
            return
        # Attempts that ended before this caller came: one that ends later (under way now,
        # or started by another caller first) is the one this caller waited for.
        failed_before = self._failed_opens
        with self._open_lock:
            if self.started:
                return
            if self._failed_opens != failed_before and self._open_failure is not None:
                raise renewed(self._open_failure)  # failed while this caller waited
            if self._closed():
                raise self._closed_error()  # closed while this caller waited
            try:
                conn = self._open()
            except StargateError as exc:
                if self._closed():  # the close cut the handshake short: not the server's doing
                    raise self._closed_error() from exc
                self._open_failure = exc
                self._failed_opens += 1
                raise
            self._open_failure = None
            if not self._attach(conn):
                conn.release()
                raise self._closed_error()
            self.started = True
            if isinstance(conn, PushTransport):
                self._hand_reading_over(conn)
            else:
                self._start_thread(lambda: conn)

    def send(self, frame: bytes) -> None:
        """Queue ``frame`` on the connection; call under the lock.

        A connection that is gone drops it: the reopen writes every pending message again.
        """
        conn = self._conn
        if conn is not None:
            try:  # noqa: SIM105 (contextlib.suppress costs a context manager per message)
                conn.send(frame)
            except StargateConnectionError:
                pass

    def stop(self) -> None:
        """Begin closing the socket; the receive thread ends once the server answers."""
        self._stopped.set()
        with self._lock:
            conn = self._conn
        if conn is not None:
            conn.close()
        _handshakes.cut_short(owner=self)  # a send's first open, or a reopen, under way

    def wait_stopped(self, deadline: float) -> None:
        """Wait for the socket's end and the receive thread, cutting the socket at ``deadline``."""
        if not self.started or self._thread is threading.current_thread():
            return  # a receive thread ends the socket on its way out
        if not self._ended.wait(max(0.0, deadline - time.monotonic())):
            with self._lock:
                conn = self._conn
            if conn is not None:
                conn.abort()
            self._ended.wait(1.0)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.1, deadline - time.monotonic()))

    def _open(self) -> Transport:
        with _handshakes.on_behalf_of(self):
            return self._context.open(self._url, self._topic.topic)

    def _closed(self) -> bool:
        with self._lock:
            return self._state.closed

    def _attach(self, conn: Transport) -> bool:
        """Make ``conn`` the connection and write what is pending on it; False when closed."""
        with self._lock:
            if self._state.closed:
                return False
            self._conn = conn
            frames = self._state.reopened()
            with contextlib.suppress(StargateConnectionError):  # dropped again: reopened again
                for frame in frames:
                    conn.send(frame)
        if frames:
            log.info("producer on %s connected; sent %d pending again", self._topic, len(frames))
        return True

    def _start_thread(self, opening: Callable[[], Transport | None]) -> None:
        self._thread = threading.Thread(
            target=self._run,
            args=(opening,),
            name=f"rxstargate-producer-{self._topic.topic}",
            daemon=True,
        )
        self._thread.start()

    def _hand_reading_over(self, conn: Transport) -> None:
        cast(PushTransport, conn).deliver_to(
            self._received, lambda error: self._pushed_end(error, conn)
        )

    def _pushed_end(self, error: ConnectionClosedError | None, conn: Transport) -> None:
        """On the transport's thread: the socket ended; reopen on a receive thread."""
        if error is None or self._stopped.is_set():
            conn.release()
            self._ended.set()
            return

        def reopen() -> Transport | None:
            conn.release()
            return self._reopen(error)

        self._start_thread(reopen)

    def _run(self, opening: Callable[[], Transport | None]) -> None:
        handed_over = False
        try:
            handed_over = self._read(opening())
        except Exception as exc:  # a bug must end the producer, never leave it silent
            log.exception("the receive thread of the producer on %s failed", self._topic)
            with self._lock:
                current = self._conn
            if current is not None:
                current.release()
            self._failed(ProtocolError(f"the receive thread failed: {exc!r}"))
        finally:
            if not handed_over:
                self._ended.set()

    def _read(self, conn: Transport | None) -> bool:
        """Read until the end (False) or until the transport took the reading over (True)."""
        while conn is not None:
            if isinstance(conn, PushTransport):
                self._hand_reading_over(conn)
                return True
            try:
                texts = conn.recv_batch()
            except ConnectionClosedError as exc:
                conn.release()
                conn = self._reopen(exc)
                continue
            if texts is None:
                conn.release()
                return False
            self._received(texts)
        return False

    def _reopen(self, drop: ConnectionClosedError) -> Transport | None:
        """A new connection after ``drop`` (None when stopped or given up)."""
        if self._stopped.is_set():
            return None
        log.warning("producer on %s lost its connection: %s", self._topic, drop)
        with self._lock:
            self._state.lost()
        if not drop.retriable:
            self._failed(drop)
            return None
        try:
            new = reconnect(
                self._open,
                self._context.backoff,
                self._stopped,
                f"producer on {self._topic}",
            )
        except StargateError as error:
            self._failed(error)
            return None
        if new is not None and not self._attach(new):
            new.abort()  # closed while reconnecting: recv() now returns None
        return new
