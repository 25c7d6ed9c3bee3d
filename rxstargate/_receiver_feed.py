"""Where a subscription's frames come from: its socket, opened, read and reopened after drops.

A :class:`Feed` opens the socket on a thread of its own ("rxstargate-consumer-<topic>" /
"rxstargate-reader-<topic>"), decodes each batch of frames and hands it to the subscription's
delivery queue. It never runs user code (but ``client.errors`` observers, for what it reports),
so pongs and closes are read on time however slow the pipeline is.

How long that thread lives depends on the transport. One that only has ``recv_batch`` keeps it
reading until the stream ends. One that hands frames over by itself (the I/O loop's
``deliver_to``) needs it only while a socket opens: the loop's thread then decodes and queues
each batch, and a drop starts a thread again to reopen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import cast

from rxstargate import _handshakes
from rxstargate._context import ClientContext
from rxstargate._frames import MessageFrame, decode_message, decode_messages
from rxstargate._reader_position import ReaderPosition
from rxstargate._receive_state import ReaderState, ReceiveState
from rxstargate._receiver_spec import ReceiverSpec
from rxstargate._reconnect import reconnect
from rxstargate._seam import PushTransport, Transport
from rxstargate._settler import Settler
from rxstargate.exceptions import (
    ConflictError,
    ConnectionClosedError,
    ProtocolError,
    StargateError,
)
from rxstargate.models import TopicName
from rxstargate.streams import StreamHandle

__all__ = ["Batch", "Feed", "NormalClose"]

log = logging.getLogger("rxstargate.receiver")

_PIN_TIMEOUT = 1.0  # seconds a reader from "latest" waits to learn where that was
_OWN_CLOSE_SETTLE = 1.0  # seconds the server may take to free a subscription we closed

#: One read's messages, with the settler of the socket they came from.
Batch = tuple[Settler, list[MessageFrame]]
Opened = tuple[Transport, Settler]


class NormalClose(Exception):
    """The server closed the socket normally: the stream completes."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))


class _Stopped(Exception):
    """Opening was abandoned because the stream stopped meanwhile."""


class Feed:
    """Opens, reads and reopens one subscription's socket.

    Args:
        context: the client's shared state.
        spec: what the subscription is.
        state: its receiving core (guarded by ``lock``).
        lock: the stream's lock; it also guards :attr:`conn`.
        stopped: set once the stream stops: no more connecting.
        deliver: puts a batch of messages on the delivery queue.
        fail: ends the stream with an error.
        done: called once when no socket is open and none will be.
        handle: the stream (for logs, and to know which of its client's streams it is).
    """

    def __init__(
        self,
        context: ClientContext,
        spec: ReceiverSpec,
        state: ReceiveState,
        lock: threading.Lock,
        stopped: threading.Event,
        deliver: Callable[[Batch], None],
        fail: Callable[[Exception], None],
        done: Callable[[], None],
        handle: StreamHandle,
        key: int,
    ) -> None:
        self._context = context
        self._spec = spec
        self._state = state
        self._lock = lock
        self._stopped = stopped
        self._deliver = deliver
        self._fail = fail
        self._done = done
        self._handle = handle
        self._key = key
        self.conn: Transport | None = None
        self.ended = threading.Event()
        self._thread = self._new_thread(self._first_open)

    def start(self) -> None:
        """Open the socket (on the feed's thread) and read it."""
        self._thread.start()

    def _new_thread(self, opening: Callable[[], Opened | None]) -> threading.Thread:
        name = f"rxstargate-{self._state.kind}-{self._spec.topic.topic}"
        return threading.Thread(target=self._run, args=(opening,), name=name, daemon=True)

    def wait_ended(self, deadline: float) -> None:
        """Wait for the socket's end (until ``deadline``, then cut it) and the feed's thread."""
        if self._thread is threading.current_thread():
            return  # the feed's own thread ends the feed on its way out
        if not self.ended.is_set():
            _handshakes.cut_short(owner=self)  # a stopped feed wants no new socket
        if not self.ended.wait(max(0.0, deadline - time.monotonic())):
            with self._lock:
                conn = self.conn
            if conn is not None:  # else it is still opening one: nothing to wait for
                conn.abort()
                self.ended.wait(1.0)
        thread = self._thread
        if thread.ident is not None:
            thread.join(max(0.1, deadline - time.monotonic()))

    def _finish(self) -> None:
        with self._lock:
            if self.ended.is_set():
                return
            self.ended.set()
        self._done()

    # -- the feed's thread -------------------------------------------------------------------

    def _run(self, opening: Callable[[], Opened | None]) -> None:
        handed_over = False
        try:
            opened = opening()
            if opened is not None:
                handed_over = self._read(*opened)
        except Exception as exc:  # a bug must end the stream, never leave it silent
            log.exception("the receive thread of %s failed", self._handle)
            with self._lock:
                conn = self.conn
            if conn is not None:
                conn.release()
            self._fail(ProtocolError(f"the receive thread failed: {exc!r}"))
        finally:
            if not handed_over:
                self._finish()

    def _first_open(self) -> Opened | None:
        try:
            opened = self._open()
        except _Stopped:
            return None
        except StargateError as exc:
            self._fail(exc)
            return None
        state = self._state
        if isinstance(state, ReaderState) and state.position.needs_pin:
            _pin_latest(self._context, self._spec.topic, state.position, self._lock)
        return opened

    def _read(self, conn: Transport, settler: Settler) -> bool:
        """Read until the stream ends (False) or the transport took over the reading (True)."""
        while True:
            if isinstance(conn, PushTransport):
                self._hand_reading_over(conn, settler)
                return True
            try:
                texts = conn.recv_batch()
            except ConnectionClosedError as exc:
                opened = self._reopen_after(exc, conn, settler)
                if opened is None:
                    return False
                conn, settler = opened
                continue
            if texts is None:  # closed by us
                settler.lost()
                conn.release()
                return False
            self._received(texts, settler)

    def _hand_reading_over(self, conn: Transport, settler: Settler) -> None:
        cast(PushTransport, conn).deliver_to(
            lambda texts: self._received(texts, settler),
            lambda error: self._pushed_end(error, conn, settler),
        )

    def _received(self, texts: list[str], settler: Settler) -> None:
        frames = self._decode(texts, settler)
        if frames:
            self._deliver((settler, frames))

    def _pushed_end(
        self, error: ConnectionClosedError | None, conn: Transport, settler: Settler
    ) -> None:
        """On the transport's thread: the socket ended; reopen on a thread of the feed's."""
        if error is None or self._stopped.is_set():
            settler.lost()
            conn.release()
            self._finish()
            return
        thread = self._new_thread(lambda: self._reopen_after(error, conn, settler))
        self._thread = thread
        thread.start()

    def _reopen_after(
        self, exc: ConnectionClosedError, conn: Transport, settler: Settler
    ) -> Opened | None:
        """The socket dropped: open the next one, or end the stream (None)."""
        unsettled = settler.lost()
        conn.release()
        if self._stopped.is_set():
            return None
        if exc.code == 1000 or not exc.retriable:
            self._fail(exc if exc.code != 1000 else NormalClose(exc))
            return None
        redelivered = f" ({unsettled} unsettled: redelivered)" if self._state.redelivers else ""
        log.warning("%s lost its connection: %s%s", self._handle, exc, redelivered)
        try:
            return reconnect(
                self._open, self._context.backoff, self._stopped, str(self._spec.topic)
            )
        except _Stopped:
            return None
        except StargateError as error:
            self._fail(error)
            return None

    def _decode(self, texts: list[str], settler: Settler) -> list[MessageFrame]:
        frames = decode_messages(texts)  # the common case: every frame at once
        if frames is None:  # one at a time, reporting what is refused
            frames = []
            for text in texts:
                try:
                    frames.append(decode_message(text))
                except ProtocolError as exc:
                    if '"endOfTopic"' not in text:
                        self._context.report(exc)
                        settler.skip()
        return settler.received(frames) if frames else frames

    # -- opening -----------------------------------------------------------------------------

    def _open(self) -> Opened:
        with self._lock:
            reopen = self._state.reopen()
        conn = self._connect(self._spec.url(self._context, reopen))
        with self._lock:
            opened = None if self._stopped.is_set() else self._state.opened(time.monotonic())
            if opened is not None:
                self.conn = conn
                for frame in opened[1]:
                    conn.send(frame)
        if opened is None:
            conn.release()  # outside the lock: it may wait for the socket's thread
            raise _Stopped()
        if self._spec.on_open is not None:
            self._spec.on_open()
        return conn, Settler(self._state, opened[0], conn, self._lock, self._context)

    def _connect(self, url: str) -> Transport:
        """Open the socket; a subscription that a consumer of this client is leaving is awaited.

        ``take(n)`` hands on its completion before the consumer it ends is disposed, so the
        next ``observe()`` of an Exclusive subscription can reach the server before the old
        socket's close does and be refused (409) for a conflict that nobody made.
        """
        subscription = self._spec.subscription
        give_up = time.monotonic() + self._context.transport.close_timeout + _OWN_CLOSE_SETTLE
        last_own = -_OWN_CLOSE_SETTLE
        while True:
            try:
                with _handshakes.on_behalf_of(self):
                    return self._context.open(url, self._spec.topic.topic)
            except ConflictError:
                now = time.monotonic()
                if subscription is not None and self._context.holds(
                    self._spec.topic, subscription, self._key
                ):
                    last_own = now
                if now - last_own >= _OWN_CLOSE_SETTLE or now > give_up:
                    raise
            if self._stopped.wait(0.05):
                raise _Stopped()


def _pin_latest(
    context: ClientContext, topic: TopicName, position: ReaderPosition, lock: threading.Lock
) -> None:
    """Learn where "latest" was once a reader from there first opened.

    A reader that drops before its first message must reopen at that place, not at "latest"
    again, which would skip what was published while it was away. Asked right after the first
    socket opened (so the open is not delayed): the topic's last message id from the admin
    API. When the server will not say in time, the reader keeps reopening at "latest"
    (README, Limits).
    """
    config = context.transport
    wait = min(config.connect_timeout, _PIN_TIMEOUT)
    try:
        last = context.last_message_id(topic, replace(config, connect_timeout=wait))
    except StargateError as exc:
        log.info("reader on %s: cannot learn where it starts (%s)", topic, exc)
        return
    with lock:
        position.pinned(last)
