"""Commands a consumer socket sends, read as Pulsar maps them onto its ``ConsumerCommand``.

Pulsar reads ``type`` and ``messageId`` as Java Strings and ``permitMessages`` as a Java
``Integer`` (Jackson: numbers with a fraction are truncated, numeric strings are converted,
anything else or out of the int range is an error), then dispatches on ``type``; a missing or
unknown type is an ack. Whatever it cannot map, or a JSON text nested deeper than its parser
allows, is "Failed to de-serialize from JSON" (error 3): the socket is closed.

Local Pulsar's gateway and MemoryPulsar both read commands here.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from rxstargate._service_rules.jackson import (
    ACK,
    END_OF_TOPIC,
    NACK,
    PERMIT,
    UNSUBSCRIBE,
    JacksonError,
    java_int,
    java_string,
)

__all__ = [
    "Command",
    "CommandError",
    "end_of_topic_answer",
    "is_end_of_topic_query",
    "parse_command",
]

_PLAIN_ACK_HEAD = '{"messageId":"'


class CommandError(Exception):
    """A command Pulsar cannot parse (it closes the socket with error 3)."""


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed consumer command.

    Attributes:
        kind: ``ack``, ``negativeAcknowledge``, ``permit``, ``unsubscribe`` or ``isEndOfTopic``.
        message_id: the id as sent (acks and nacks).
        id_bytes: its serialized bytes.
        permits: ``permitMessages`` (permits).
    """

    kind: str
    message_id: str = ""
    id_bytes: bytes = b""
    permits: int = 0


def _settling(kind: str, value: str | None) -> Command:
    """An ack or nack of ``value``, a command's ``messageId``.

    Raises:
        CommandError: when it is missing or not standard base64.
    """
    if not value:
        raise CommandError("messageId is missing")
    try:
        return Command(kind, value, base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise CommandError(str(exc)) from None


def end_of_topic_answer(reached: bool) -> str:
    """The answer to ``isEndOfTopic``: Pulsar's EndOfTopicResponse, a JSON boolean."""
    return '{"endOfTopic":true}' if reached else '{"endOfTopic":false}'


def is_end_of_topic_query(text: str) -> bool:
    """Whether a reader's frame asks ``isEndOfTopic`` (any other frame is an ack)."""
    try:
        command = json.loads(text)
    except (ValueError, RecursionError):  # not a command: counts as an ack
        return False
    return isinstance(command, dict) and command.get("type") == END_OF_TOPIC


def parse_command(text: str) -> Command:
    """Parse one consumer command frame; no or an unknown type is an ack.

    Raises:
        CommandError: for what Pulsar answers with error 3.

    Example:
        >>> parse_command('{"type": "permit", "permitMessages": 100}')
        Command(kind='permit', message_id='', id_bytes=b'', permits=100)
    """
    if text.startswith(_PLAIN_ACK_HEAD) and text.endswith('"}'):
        # The ack every client sends, {"messageId":"<base64>"}, read without a JSON parser.
        value = text[len(_PLAIN_ACK_HEAD) : -2]
        if '"' not in value and "\\" not in value:
            return _settling(ACK, value)
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise CommandError(f"Failed to de-serialize from JSON: {type(exc).__name__}") from None
    if not isinstance(frame, dict):
        raise CommandError("Cannot deserialize `ConsumerCommand` from a non-object")
    try:
        kind = java_string(frame.get("type"), "type")
        message_id = java_string(frame.get("messageId"), "messageId")
        permits = java_int(frame.get("permitMessages"))
    except JacksonError as exc:
        raise CommandError(str(exc)) from None
    if kind == PERMIT:
        if permits is None:
            raise CommandError("Missing required permitMessages field for 'permit' command")
        return Command(PERMIT, permits=permits)
    if kind in (UNSUBSCRIBE, END_OF_TOPIC):
        return Command(kind)
    return _settling(NACK if kind == NACK else ACK, message_id)
