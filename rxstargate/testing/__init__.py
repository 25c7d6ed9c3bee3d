"""Testing pipelines without a broker: :class:`MemoryPulsar`, Pulsar's WebSocket API in memory.

::

    from rxstargate.testing import MemoryPulsar

    with MemoryPulsar() as pulsar:
        client = pulsar.client()                    # an rs.Client wired to it
        pulsar.publish("orders", b"x", key="k")      # -> rs.MessageId
        pulsar.stored("orders")                      # -> list[rs.Message], in order
        pulsar.backlog("orders", "billing")          # -> messages not acked on a subscription
        pulsar.cut()                                 # every socket drops, as in a network cut
        pulsar.refuse_next(status=403)               # the next handshake is refused

Clients reach it through the transport seam (``rs.Client(url, connect=...)``): the same frames,
query parameters and HTTP refusals as Pulsar's WebSocket service, and local Pulsar's broker
semantics, with no socket. Needs only the client's own dependencies.

What it does not do: partitioned topics, batching (``batching_enabled`` is accepted and every
message is stored alone), compression, delayed delivery (``deliver_at``/``deliver_after`` are
accepted and ignored), encryption (refused with 500), topic termination, seek, schemas in a
registry; consumers get no prefetch (a message goes out only when a socket may take it), and
Key_Shared spreads keys by a hash over the consumers connected now (no sticky ranges).
"""

from rxstargate.testing._connector import MemoryConnector, NoSubscriptionError, SocketInfo
from rxstargate.testing._pulsar import MemoryPulsar
from rxstargate.testing._transport import MemoryTransport

__all__ = [
    "MemoryConnector",
    "MemoryPulsar",
    "MemoryTransport",
    "NoSubscriptionError",
    "SocketInfo",
]
