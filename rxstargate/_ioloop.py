"""One I/O thread per client that reads and writes every socket: a :data:`~rxstargate.Connector`.

An :class:`IOLoop` opens sockets as the default connector does (websocket-client's handshake, in
the caller's thread, within ``connect_timeout``) and from then on owns them: one thread
("rxstargate-io") waits on all of them with :mod:`selectors`, writes what their owners queued
(non-blocking, many frames per system call) and reads and parses what arrives
(:class:`~rxstargate._loop_connection.LoopConnection`). A peer that stops reading holds up only
its own socket: the loop writes what the socket takes and drops it after ``write_timeout``
seconds without progress.

The thread starts with the first socket and ends when the last one is released, so a client
that closed holds no thread. Whatever runs on the loop thread (frame callbacks of
:meth:`LoopConnection.deliver_to`) must not block.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable

from rxstargate._config import TransportConfig, redact_url
from rxstargate._loop_connection import LoopConnection
from rxstargate._loop_socket import READ_SIZE, LoopSocket
from rxstargate._transport import _handshake

__all__ = ["IOLoop"]

log = logging.getLogger("rxstargate.transport")

_LINGER = 0.002  # lazy frames (acks, permits) wait at most this long to leave together
_TICK = 0.25  # how often write progress is checked while a socket is slow (seconds)
_IDLE_WAKE = 1.0  # the loop looks around at least this often
_RELEASE_WAIT = 5.0  # how long release() waits for the loop to close a socket (seconds)


class _Run:
    """The selector and wake-up pair of one run of the loop thread."""

    def __init__(self, name: str, body: Callable[[_Run], None]) -> None:
        self.selector = selectors.DefaultSelector()
        self.wake_reader, self.wake_writer = socket.socketpair()
        self.wake_reader.setblocking(False)
        self.wake_writer.setblocking(False)
        self.selector.register(self.wake_reader, selectors.EVENT_READ, None)
        self.interest: dict[LoopSocket, int] = {}
        self.writers: set[LoopSocket] = set()  # waiting for the socket to take a batch
        self.again: list[LoopSocket] = []  # more to read without a new event (TLS)
        self.read_buffer = memoryview(bytearray(READ_SIZE))  # every socket's reads, in turn
        self.thread = threading.Thread(target=body, args=(self,), name=name, daemon=True)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self.wake_writer.send(b"\0")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while self.wake_reader.recv(4096):
                pass

    def close(self) -> None:
        self.selector.close()
        self.wake_reader.close()
        self.wake_writer.close()


class IOLoop:
    """Opens sockets and serves all of them from one thread.

    Give it to a client as its connector (``rs.Client(url, connect=IOLoop())``); every socket
    the client opens then shares the loop's thread instead of having a writer of its own.

    Args:
        name: the loop thread's name.
    """

    def __init__(self, name: str = "rxstargate-io") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._run: _Run | None = None
        self._last_run: _Run | None = None  # the run that ended last (its thread may be ending)
        self._sleep_until = 0.0  # when the sleeping loop wakes by itself (0.0: it is awake)
        self._sockets: set[LoopSocket] = set()
        self._calls: list[Callable[[], None]] = []
        self._flush: dict[LoopSocket, float] = {}  # when to write (0.0: at once)

    def __call__(self, url: str, config: TransportConfig, name: str = "socket") -> LoopConnection:
        """Connect, complete the handshake within ``config.connect_timeout``, hand it to the loop.

        Raises:
            HandshakeError: a typed subclass, when the server refuses the upgrade.
            StargateConnectionError: when the host cannot be reached or the handshake fails.
        """
        sock = _handshake(url, config)
        sock.setblocking(False)
        connection = LoopConnection(sock, redact_url(url), config, self)
        io = connection.io
        with self._lock:
            self._sockets.add(io)
            self._calls.append(lambda: self._update(io))
            self._wake_locked()
        return connection

    @property
    def thread(self) -> threading.Thread | None:
        """The loop's thread while it runs."""
        run = self._run
        return None if run is None else run.thread

    # -- any thread ------------------------------------------------------------------------

    def wait_idle(self, deadline: float) -> bool:
        """Wait (until ``deadline``) for the thread to end, once no socket is left; True if it did.

        A closing client calls it after releasing its sockets, so that it leaves no thread.
        """
        with self._lock:
            run = self._run or self._last_run
            if self._sockets:
                return False
        if run is None or run.thread is threading.current_thread():
            return run is None
        run.thread.join(max(0.0, deadline - time.monotonic()))
        return not run.thread.is_alive()

    def flush_soon(self, io: LoopSocket, urgent: bool) -> None:
        """Have the loop write the socket's queue: now, or within the linger time."""
        when = 0.0 if urgent else time.monotonic() + _LINGER
        with self._lock:
            previous = self._flush.get(io)
            if previous is None or when < previous:
                self._flush[io] = when
                self._wake_locked(when)

    def call_soon(self, call: Callable[[], None]) -> None:
        """Run ``call`` on the loop thread."""
        with self._lock:
            self._calls.append(call)
            self._wake_locked()

    def release(self, io: LoopSocket) -> None:
        """Forget the socket and close it; the last one ends the loop thread."""
        with self._lock:
            self._sockets.discard(io)
            run = self._run
            if run is None or run.thread is threading.current_thread():
                run = None
            else:
                self._calls.append(lambda: self._forget(io))
                self._wake_locked()
        if run is None:  # on the loop thread, or no loop: close it here
            self._forget(io)
            return
        if not io.released.wait(_RELEASE_WAIT):
            log.warning("the I/O loop did not release the socket of %s", io.connection.url)
        deadline = time.monotonic() + _RELEASE_WAIT
        while run.thread.is_alive() and time.monotonic() < deadline:
            with self._lock:
                if self._sockets:
                    return  # the loop goes on for the others
            run.thread.join(0.05)

    def _wake_locked(self, when: float = 0.0) -> None:
        """Make sure the loop looks at its work by ``when``: wake it only if it sleeps longer.

        An awake loop reads the work under the lock before it sleeps again, so most sends
        of a busy client cost no system call.
        """
        run = self._run
        if run is None:
            run = self._run = _Run(self._name, self._loop)
            run.thread.start()
        if self._sleep_until > when:
            self._sleep_until = 0.0
            run.wake()

    # -- the loop thread -------------------------------------------------------------------

    def _loop(self, run: _Run) -> None:
        timeout = 0.0
        try:
            while self._turn(run, timeout):
                timeout = self._timeout(run)
        except Exception:  # a bug must not leave sockets unserved without a word
            log.exception("the I/O loop failed")
            with self._lock:
                self._run, self._last_run = None, run
                sockets = list(self._sockets)
            for io in sockets:
                io.connection.drop("the I/O loop failed")
        finally:
            for io in list(run.interest):
                with contextlib.suppress(KeyError, ValueError, OSError):
                    run.selector.unregister(io.sock)
            run.close()

    def _turn(self, run: _Run, timeout: float) -> bool:
        """One round: wait for sockets, read, write; False when the loop should end."""
        again, run.again = run.again, []
        events = run.selector.select(timeout)
        self._sleep_until = 0.0  # awake: work queued from now on is seen without a wake-up
        for key, mask in events:
            io = key.data
            if io is None:
                run.drain()
                continue
            if mask & selectors.EVENT_READ and io.reading and io not in again:
                again.append(io)
            if mask & selectors.EVENT_WRITE:
                io.flush()
                self._update(io)
        for io in again:
            if io.reading and io.readable(run.read_buffer):
                run.again.append(io)
            self._update(io)
        with self._lock:
            calls, self._calls = self._calls, []
            now = time.monotonic()
            due = [io for io, when in self._flush.items() if when <= now]
            for io in due:
                del self._flush[io]
        for call in calls:
            call()
        for io in due:
            io.flush()
            self._update(io)
        for io in list(run.writers):
            io.check_write(now)
            self._update(io)
        with self._lock:
            if self._sockets or self._calls or run.interest or self._run is not run:
                return True
            self._run, self._last_run = None, run
            return False

    def _timeout(self, run: _Run) -> float:
        """How long the next select() may sleep; from now on, new work wakes the loop."""
        timeout = _TICK if run.writers else _IDLE_WAKE
        with self._lock:
            now = time.monotonic()
            if run.again or self._calls:
                timeout = 0.0
            elif self._flush:
                timeout = min(timeout, max(0.0, min(self._flush.values()) - now))
            self._sleep_until = now + timeout if timeout > 0.0 else 0.0
        return timeout

    def _update(self, io: LoopSocket) -> None:
        """Register the socket for what it waits for now (reading, writing, or nothing)."""
        run = self._run
        if run is None or io.released.is_set():
            return
        events = (selectors.EVENT_READ if io.reading else 0) | (
            selectors.EVENT_WRITE if io.writing else 0
        )
        current = run.interest.get(io, 0)
        if events == current:
            return
        try:
            if not current:
                run.selector.register(io.sock, events, io)
            elif not events:
                run.selector.unregister(io.sock)
            else:
                run.selector.modify(io.sock, events, io)
        except (KeyError, ValueError, OSError) as exc:  # closed under us
            log.debug("the socket of %s left the loop: %s", io.connection.url, exc)
            run.interest.pop(io, None)
            run.writers.discard(io)
            io.reading = False
            return
        if events:
            run.interest[io] = events
        else:
            del run.interest[io]
        if events & selectors.EVENT_WRITE:
            run.writers.add(io)
        else:
            run.writers.discard(io)

    def _forget(self, io: LoopSocket) -> None:
        run = self._run
        if run is not None:
            run.writers.discard(io)
            if run.interest.pop(io, 0):
                with contextlib.suppress(KeyError, ValueError, OSError):
                    run.selector.unregister(io.sock)
        with self._lock:
            self._flush.pop(io, None)
        io.close()
