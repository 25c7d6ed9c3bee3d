"""Fault injection for tests: a loopback TCP proxy that can reset or stall its connections.

Put it between a client and a server (``FaultProxy(target_port)``, then connect to
``proxy.port``). ``reset()`` cuts every open connection with a TCP RST on both sides
(SO_LINGER 0), as a crashed middlebox would; ``stall()`` stops forwarding in both directions
(the peers' sockets stay open, their writes pile up), ``resume()`` forwards again.

``Faults`` does the same to a client on either test backend: through a FaultProxy to local
Pulsar, or with MemoryPulsar's ``cut()`` and a connector that refuses handshakes while told to.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any

_LINGER_ZERO = struct.pack("ii", 1, 0)


def hard_close(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP RST instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 to ``target_host:target_port``; stop it with ``close()``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._orphans: list[socket.socket] = []
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._refusing = threading.Event()
        self._stop = threading.Event()
        self.accepted = 0
        self.resets = 0
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._acceptor.start()

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:<port>`` of the proxy."""
        return f"ws://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if self._refusing.is_set():
                hard_close(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                hard_close(client)
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
                self.accepted += 1
            thread = threading.Thread(
                target=self._pump, args=(client, upstream), name="fault-proxy-pump", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while not self._stop.is_set():
                if not self._forwarding.wait(0.1):
                    continue
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                for sock in readable:
                    if not self._forwarding.is_set():
                        break
                    data = sock.recv(65536)
                    if not data:
                        return self._close_pair(client, upstream, graceful=True)
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            self._close_pair(client, upstream, graceful=False)

    def _close_pair(self, client: socket.socket, upstream: socket.socket, graceful: bool) -> None:
        with self._lock:
            if (client, upstream) not in self._pairs:
                return  # reset() owns it now
            self._pairs.remove((client, upstream))
        for sock in (client, upstream):
            if graceful:
                with contextlib.suppress(OSError):
                    sock.close()
            else:
                hard_close(sock)

    @property
    def open_connections(self) -> int:
        """How many proxied connections are open now."""
        with self._lock:
            return len(self._pairs)

    def reset(self, *, half_open: bool = False) -> int:
        """Cut every open connection with a RST; returns how many were cut.

        With ``half_open`` only the client's side is reset: the server's side stays open and
        silent, as after a crash or a partition that the server cannot see (until it pings).
        """
        with self._lock:
            pairs, self._pairs = self._pairs, []
            self.resets += len(pairs)
            if half_open:
                self._orphans.extend(upstream for _, upstream in pairs)
        for client, upstream in pairs:
            hard_close(client)
            if not half_open:
                hard_close(upstream)
        return len(pairs)

    def stall(self) -> None:
        """Stop forwarding bytes either way (connections stay open)."""
        self._forwarding.clear()

    def resume(self) -> None:
        """Forward again after :meth:`stall`."""
        self._forwarding.set()

    def refuse(self, refusing: bool = True) -> None:
        """Reset every new connection at once (the server looks down) until called with False."""
        if refusing:
            self._refusing.set()
        else:
            self._refusing.clear()

    def close(self) -> None:
        """Stop accepting, reset what is open and stop every thread."""
        self._stop.set()
        self._forwarding.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.reset()
        for orphan in self._orphans:
            hard_close(orphan)
        self._acceptor.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class RefusingConnector:
    """MemoryPulsar's connector, refusing every handshake while ``refusing`` is set (as a
    server that is down), and counting those it let through."""

    def __init__(self, memory: Any) -> None:
        self._connect = memory.connect
        self.refusing = threading.Event()
        self.accepted = 0

    def __call__(self, url: str, config: Any, name: str = "socket") -> Any:
        if self.refusing.is_set():
            from rxstargate import StargateConnectionError

            raise StargateConnectionError(f"connection to {url} refused")
        transport = self._connect(url, config, name)
        self.accepted += 1
        return transport

    def last_message_id(self, *args: Any, **kwargs: Any) -> Any:
        """The admin API's answer, never refused (only handshakes are)."""
        return self._connect.last_message_id(*args, **kwargs)


class Faults:
    """A client's connections and what a test does to them, on either backend.

    On local Pulsar: a FaultProxy to the session's Pulsar (resets are TCP RSTs). On MemoryPulsar:
    its ``cut()`` and a refusing connector.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.memory: Any = backend.memory
        self._proxy: FaultProxy | None = None
        self._connector: RefusingConnector | None = None
        if self.memory is not None:
            self._connector = RefusingConnector(self.memory)
        else:
            assert backend.endpoint is not None
            self._proxy = FaultProxy(int(backend.endpoint.ws_url.rsplit(":", 1)[1]))

    def client(self, **kwargs: Any) -> Any:
        """A client whose connections go through the faults."""
        import rxstargate as rs
        from rxstargate.testing import MemoryPulsar

        if self._connector is not None:
            return rs.Client(MemoryPulsar.url, connect=self._connector, **kwargs)
        assert self._proxy is not None
        return rs.Client(self._proxy.ws_url, **kwargs)

    def reset(self) -> int:
        """Cut the connections (on MemoryPulsar: every one); how many were cut."""
        if self.memory is not None:
            return self.memory.cut()
        assert self._proxy is not None
        return self._proxy.reset()

    def refuse(self, refusing: bool = True) -> None:
        if self._connector is not None:
            if refusing:
                self._connector.refusing.set()
            else:
                self._connector.refusing.clear()
        else:
            assert self._proxy is not None
            self._proxy.refuse(refusing)

    @property
    def accepted(self) -> int:
        """How many connections the client opened through the faults."""
        if self._connector is not None:
            return self._connector.accepted
        assert self._proxy is not None
        return self._proxy.accepted

    def close(self) -> None:
        if self._proxy is not None:
            self._proxy.close()


def unacked_messages(
    where: Any,
    topic: str,
    subscription: str,
    subscription_type: str = "Exclusive",
    keys: Iterable[str] = (),
) -> list[Any]:
    """What ``subscription`` still holds unacked: every message before a sentinel sent now.

    ``where`` is an open ``rs.Client`` (of local Pulsar or a MemoryPulsar), or the WebSocket
    URL to open one on. Each message read is acked, so the subscription is left empty. On a
    Key_Shared subscription order holds only per key, so pass the messages' ``keys``: a
    sentinel goes with each of them too, and reading ends once every sentinel came.
    """
    import rxstargate as rs

    if isinstance(where, str):
        with rs.Client(where) as client:
            return unacked_messages(client, topic, subscription, subscription_type, keys)
    from reactivex import operators as ops

    sentinels = [None, *dict.fromkeys(keys)]
    waiting = len(sentinels)

    def before_the_last_sentinel(message: Any) -> bool:
        nonlocal waiting
        if message.payload == b"sentinel":
            waiting -= 1
        return waiting > 0

    target = where.topic(topic)
    stream = target.observe(subscription, subscription_type=subscription_type)
    result: list[list[Any]] = []
    finished = threading.Event()
    handle = stream.pipe(
        ops.do_action(lambda m: m.ack()),
        ops.take_while(before_the_last_sentinel),
        ops.filter(lambda m: m.payload != b"sentinel"),
        ops.to_list(),
    ).subscribe(result.append, on_completed=finished.set)
    try:
        producer = target.producer()
        for key in sentinels:
            producer.send(rs.OutgoingMessage(b"sentinel", key=key))
        if not finished.wait(15):
            raise AssertionError("the sentinel did not arrive")
    finally:
        handle.dispose()
    return result[0]


def child_pids() -> set[int]:
    """The pids of this process's children (Linux /proc), to check nothing is left running."""
    import os

    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                        pids.add(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return pids
