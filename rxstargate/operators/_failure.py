"""What becomes of a message whose handling failed for good: nack, dead letter, or an error."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from rxstargate._producer import Producer, send_error_for
from rxstargate.exceptions import AckError, ConfigurationError
from rxstargate.models import Message, OutgoingMessage, ProducerAck

__all__ = [
    "DeadLetter",
    "FailurePolicy",
    "dead_letter",
    "not_a_message",
    "settle_failure",
    "validate_policy",
]

log = logging.getLogger("rxstargate.operators")

#: The properties a dead-lettered message carries besides its own.
ERROR_PROPERTY = "rxstargate-error"
ERROR_TYPE_PROPERTY = "rxstargate-error-type"
SOURCE_TOPIC_PROPERTY = "rxstargate-source-topic"
SOURCE_ID_PROPERTY = "rxstargate-source-message-id"
ATTEMPTS_PROPERTY = "rxstargate-attempts"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Send failed messages to ``producer``'s topic; ack each once that send is acknowledged."""

    producer: Producer[Any]


def dead_letter(producer: Producer[Any]) -> DeadLetter:
    """The failure policy that sends a failed message to a dead-letter topic.

    The copy keeps the payload, key and properties and adds ``rxstargate-error``,
    ``rxstargate-error-type``, ``rxstargate-source-topic``, ``rxstargate-source-message-id``
    and ``rxstargate-attempts``. The original is acked only once the copy is stored; if the
    copy fails, the original is nacked.

    Example:
        >>> dlq = client.topic("orders-dlq").producer()  # doctest: +SKIP
        >>> stream.pipe(process(handle, on_failure=dead_letter(dlq)))  # doctest: +SKIP
    """
    if not isinstance(producer, Producer):
        raise ConfigurationError("dead_letter() takes a producer: topic.producer()")
    return DeadLetter(producer)


FailurePolicy = Literal["nack", "error"] | DeadLetter


def validate_policy(policy: Any) -> FailurePolicy:
    """``policy`` if it is one, else a ConfigurationError naming the choices."""
    if policy in ("nack", "error") or isinstance(policy, DeadLetter):
        return policy  # type: ignore[no-any-return]
    raise ConfigurationError(
        f"on_failure must be 'nack', 'error' or dead_letter(producer), not {policy!r}"
    )


def settle_failure(
    policy: FailurePolicy,
    message: Message[Any],
    error: BaseException,
    attempts: int,
    on_dead_lettered: Callable[[], None],
) -> None:
    """Settle ``message`` after its last failed attempt (the ``error`` policy is the caller's)."""
    if isinstance(policy, DeadLetter):
        properties = dict(message.properties)
        properties.update(
            {
                ERROR_PROPERTY: str(error)[:1000] or type(error).__name__,
                ERROR_TYPE_PROPERTY: type(error).__qualname__,
                SOURCE_TOPIC_PROPERTY: str(message.topic),
                SOURCE_ID_PROPERTY: str(message.message_id),
                ATTEMPTS_PROPERTY: str(attempts),
            }
        )
        copy = OutgoingMessage(message.payload, key=message.key, properties=properties)

        def stored(ack: ProducerAck) -> None:
            if ack.ok:
                _settle(message, ack=True)
                on_dead_lettered()
            else:
                log.warning(
                    "dead-lettering %s failed (%s): nacked",
                    message.message_id,
                    send_error_for(ack),
                )
                _settle(message, ack=False)

        policy.producer.send_then(copy, stored)
        return
    _settle(message, ack=False)


def _settle(message: Message[Any], ack: bool) -> None:
    # A message whose socket is gone is redelivered by the broker: nothing else to do.
    with contextlib.suppress(AckError):
        if ack:
            message.ack()
        else:
            message.nack()


def not_a_message(item: object) -> ConfigurationError:
    """The error that ends a ``process()`` given something other than a Message."""
    return ConfigurationError(
        f"process() takes Messages, not {type(item).__name__}: put it first, right after observe()"
    )
