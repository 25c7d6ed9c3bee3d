"""The values that flow through rxstargate: topic names, message ids, messages and producer acks."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from copy import deepcopy
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

from rxstargate._messageid import MessageIdFields, decode_message_id, encode_message_id
from rxstargate._topic_name import MAX_TOPIC_URL_BYTES as MAX_TOPIC_URL_BYTES
from rxstargate._topic_name import NAMED_ENTITY as NAMED_ENTITY
from rxstargate._topic_name import Persistence, TopicName
from rxstargate.exceptions import ConfigurationError

__all__ = [
    "ClientResult",
    "Message",
    "MessageId",
    "OutgoingMessage",
    "Persistence",
    "ProducerAck",
    "Settler",
    "TopicName",
]

T = TypeVar("T")

#: How values show as HTML in notebooks, by type: filled in by ``rxstargate.notebook``, which
#: imports this module (so this one imports the views only when a notebook asks for one).
_HTML_VIEWS: dict[type, Callable[[list[Any]], str]] = {}


def register_html_view(kind: type, view: Callable[[list[Any]], str]) -> None:
    """Show values of ``kind`` in notebooks as ``view([value])`` (their ``_repr_html_``).

    Called by ``rxstargate.notebook`` for messages and acks.
    """
    _HTML_VIEWS[kind] = view


def _html(value: object) -> str | None:
    """``value`` as HTML for a notebook, or None (plain text then) when no view is registered."""
    import rxstargate.notebook  # noqa: F401  (registers the views, on the first call only)

    for kind in type(value).__mro__:
        view = _HTML_VIEWS.get(kind)
        if view is not None:
            return view([value])
    return None


class MessageId:
    """A Pulsar message id, as the WebSocket API carries it.

    ``str(message_id)`` is the wire form (base64 of the serialized MessageIdData), which is
    what acks echo and what a reader may start from. An id you build is checked at once
    (``MessageId("not-an-id!")`` raises ConfigurationError); the numbers inside an id received
    from the server are decoded on first use. Ids compare and hash by their position (ledger,
    entry, partition, batch index), so two encodings of one id are equal and ids sort in topic
    order.

    Example:
        >>> mid = MessageId("CAAQAw==")
        >>> (mid.ledger_id, mid.entry_id, mid.partition, mid.batch_index)
        (0, 3, -1, -1)
        >>> MessageId.from_parts(0, 3) == mid
        True
    """

    __slots__ = ("_fields", "_wire")

    def __init__(self, wire: str) -> None:
        """Check and wrap a wire id.

        Raises:
            ConfigurationError: (a ValueError) naming ``wire`` when it is not the base64 of a
                message id, before the id can reach a server.
        """
        if not isinstance(wire, str) or not wire:
            raise ConfigurationError(f"a message id is a non-empty base64 string, not {wire!r:.80}")
        try:
            raw = base64.b64decode(wire, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError(
                f"message id {wire!r:.80} is not base64 (str() of a MessageId is its wire form)"
            ) from None
        try:
            fields = decode_message_id(raw)
        except ValueError as exc:
            raise ConfigurationError(f"{wire!r:.80} is not a Pulsar message id: {exc}") from None
        self._wire = wire
        self._fields: MessageIdFields | None = fields

    @classmethod
    def _from_wire(cls, wire: str) -> MessageId:
        """An id as a server sent it: not checked, its numbers decoded when first read.

        Receiving paths use it so that decoding costs nothing unless someone looks inside; a
        malformed one raises ValueError then.
        """
        message_id = cls.__new__(cls)
        message_id._wire = wire
        message_id._fields = None
        return message_id

    @classmethod
    def from_parts(
        cls, ledger_id: int, entry_id: int, partition: int = -1, batch_index: int = -1
    ) -> MessageId:
        """Build an id from its numbers (-1 for an absent partition or batch index)."""
        raw = encode_message_id(ledger_id, entry_id, partition, batch_index)
        return cls._from_wire(base64.b64encode(raw).decode("ascii"))

    @property
    def fields(self) -> MessageIdFields:
        """All decoded numbers.

        Raises:
            ValueError: when the wire string is not a valid message id.
        """
        if self._fields is None:
            try:
                raw = base64.b64decode(self._wire, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"message id {self._wire!r} is not base64") from None
            self._fields = decode_message_id(raw)
        return self._fields

    @property
    def ledger_id(self) -> int:
        """The ledger that holds the message."""
        return self.fields.ledger_id

    @property
    def entry_id(self) -> int:
        """The entry within the ledger."""
        return self.fields.entry_id

    @property
    def partition(self) -> int:
        """The partition index, or -1 for a non-partitioned topic."""
        return self.fields.partition

    @property
    def batch_index(self) -> int:
        """The index within a batch, or -1 when the message was not batched."""
        return self.fields.batch_index

    def _key(self) -> tuple[int, int, int, int]:
        f = self.fields
        return (f.ledger_id, f.entry_id, f.partition, f.batch_index)

    def __str__(self) -> str:
        return self._wire

    def __repr__(self) -> str:
        return f"MessageId({self._wire!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MessageId):
            return NotImplemented
        return self._wire == other._wire or self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __lt__(self, other: MessageId) -> bool:
        return self._key() < other._key()

    def __le__(self, other: MessageId) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: MessageId) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: MessageId) -> bool:
        return self._key() >= other._key()


class Settler(Protocol):
    """What a received message settles through: the socket it came from.

    ``on_lost`` is called (on another thread, later) if the settle was queued but never
    reached the socket.
    """

    def ack(self, message: Message[Any], on_lost: Callable[[Any], None] | None = None) -> None:
        """Acknowledge ``message``."""

    def nack(self, message: Message[Any], on_lost: Callable[[Any], None] | None = None) -> None:
        """Negatively acknowledge ``message`` (ask for redelivery)."""


@dataclass(frozen=True, slots=True, eq=False)
class Message(Generic[T]):
    """A message received from a topic. Immutable.

    Attributes:
        topic: the topic it came from.
        payload: the raw bytes.
        message_id: its id; ``str()`` of it is the wire form.
        key: the partition key, or None.
        properties: the message properties (read-only).
        publish_time: when the broker stored it (timezone-aware).
        event_time: the producer's event time, or None.
        redelivery_count: how many times it was delivered before.
        value: the payload decoded by the stream's schema, or None without a schema.
        schema_error: why the payload does not match the stream's schema, for streams that
            deliver such messages (``observe(schema_failures="deliver")``); else None.

    ``ack()`` and ``nack()`` settle it on the socket it came from; both are idempotent.
    A pickled message (sent to a process pool, say) is its data only: the copy cannot be
    settled, so settle the original.
    """

    topic: TopicName
    payload: bytes
    message_id: MessageId
    key: str | None = None
    properties: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    publish_time: datetime | None = None
    event_time: datetime | None = None
    redelivery_count: int = 0
    value: T | None = None
    schema_error: str | None = None
    _settler: Settler | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        payload = self.payload
        preview = repr(payload[:_PREVIEW])
        if len(payload) > _PREVIEW:
            preview += f"... ({len(payload)} bytes)"
        key = f", key={self.key!r}" if self.key is not None else ""
        props = f", properties={dict(self.properties)!r}" if self.properties else ""
        redelivered = f", redelivery_count={self.redelivery_count}" if self.redelivery_count else ""
        return (
            f"Message({str(self.topic)!r}, id={str(self.message_id)!r}, payload={preview}"
            f"{key}{props}{redelivered})"
        )

    def _repr_html_(self) -> str | None:
        return _html(self)

    def ack(self) -> None:
        """Acknowledge this message on the socket it came from.

        Raises:
            AckError: when that socket is closed, so the ack cannot be delivered.
        """
        if self._settler is None:
            from rxstargate.exceptions import AckError

            raise AckError("this message was not received from a socket and cannot be acked")
        self._settler.ack(self)

    def nack(self) -> None:
        """Ask for redelivery of this message (negative acknowledgement).

        Raises:
            AckError: when that socket is closed, so the nack cannot be delivered.
        """
        if self._settler is None:
            from rxstargate.exceptions import AckError

            raise AckError("this message was not received from a socket and cannot be nacked")
        self._settler.nack(self)

    # Pickled, a message is its data: the socket it settles on stays in this process, so an
    # unpickled message cannot be acked (a process pool hands results back for the original).
    def __getstate__(self) -> dict[str, Any]:
        state = {name: getattr(self, name) for name in _MESSAGE_FIELDS}
        state["properties"] = dict(self.properties)
        state["_settler"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "properties", MappingProxyType(state["properties"]))

    def __copy__(self) -> Message[T]:
        return self  # immutable, and a copy must settle as the message does

    def __deepcopy__(self, memo: dict[int, Any]) -> Message[T]:
        return replace(self, value=deepcopy(self.value, memo))


_MESSAGE_FIELDS = tuple(f.name for f in fields(Message))


def message_in(item: Any) -> Message[Any] | None:
    """The message an item stands for: a Message, or a processed item's ``.message``.

    None for anything else. Operators and the acknowledger read items through this.
    """
    if isinstance(item, Message):
        return item
    message = getattr(item, "message", None)
    return message if isinstance(message, Message) else None


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message to send, with everything Pulsar lets a WebSocket producer set.

    Attributes:
        payload: bytes, a str (sent as UTF-8), or an object for the producer's schema.
        key: partition/routing key.
        properties: message properties.
        event_time: an aware datetime.
        deliver_after: delayed delivery, relative (seconds or timedelta).
        deliver_at: delayed delivery at an aware datetime.
        replication_clusters: restrict geo-replication to these clusters.
        correlation: any value of yours, never sent: it comes back on this message's
            :class:`ProducerAck`, to match acks to what was sent.

    Example:
        >>> OutgoingMessage(b"hi", key="k", properties={"a": "1"}).key
        'k'
    """

    payload: Any
    key: str | None = None
    properties: Mapping[str, str] | None = None
    event_time: datetime | None = None
    deliver_after: float | timedelta | None = None
    deliver_at: datetime | None = None
    replication_clusters: tuple[str, ...] | list[str] | None = None
    correlation: Any = None


_PREVIEW = 60


class ClientResult(StrEnum):
    """``ProducerAck.result`` values for failures found by the client, not by Pulsar.

    Pulsar's own results are ``ok`` and ``send-error:<n>``; these never collide with them.
    """

    INVALID_PAYLOAD = "client-error:invalid-payload"
    """The payload has the wrong type or does not match the producer's schema."""
    PAYLOAD_TOO_LARGE = "client-error:payload-too-large"
    """The frame would exceed the server's frame size limit (1 MiB by default in Pulsar)."""
    CLOSED = "client-error:closed"
    """The producer (or its client) was closed before the broker answered."""
    TIMEOUT = "client-error:timeout"
    """No send slot freed up within the producer's timeout (``max_in_flight`` pending)."""
    CONNECTION_FAILED = "client-error:connection-failed"
    """The producer's socket could not be opened or was lost for good."""
    WOULD_DEADLOCK = "client-error:would-deadlock"
    """An ``acks`` callback sent while every slot was taken: waiting would wait on itself."""


@dataclass(frozen=True, slots=True)
class ProducerAck:
    """The broker's answer to one sent message.

    Attributes:
        context: the context id the message was sent with.
        message_id: the stored message's id, or None when the send failed.
        result: ``ok``, Pulsar's ``send-error:<n>``, or a :class:`ClientResult` value for a
            failure found before or without the broker.
        error_message: the server's explanation of a failure, or None.

        correlation: the ``correlation`` of the OutgoingMessage that was sent, else None.

    A failed send is an item too: ``ack.ok`` is False and ``result`` says why.
    """

    context: str
    message_id: MessageId | None
    result: str = "ok"
    error_message: str | None = None
    correlation: Any = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        """True when the broker stored the message."""
        return self.result == "ok"

    def _repr_html_(self) -> str | None:
        return _html(self)
