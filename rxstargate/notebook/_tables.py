"""Messages and acks as HTML tables (escaped), and a payload's short text preview."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from typing import Any

from rxstargate.models import Message, ProducerAck

__all__ = ["acks_html", "messages_html", "payload_preview"]

_PREVIEW = 80


def payload_preview(payload: bytes, limit: int = _PREVIEW) -> str:
    """The payload as text when it is UTF-8 text, else as base64; cut at ``limit`` characters.

    Example:
        >>> payload_preview(b"hello")
        'hello'
        >>> payload_preview(bytes([0, 255]))
        'base64:AP8='
    """
    head = payload[: limit * 4]
    text: str | None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut_mid_character = len(head) < len(payload) and exc.start >= len(head) - 3
        text = head[: exc.start].decode("utf-8") if cut_mid_character else None
    if text is None or any(not ch.isprintable() and ch not in "\n\r\t" for ch in text):
        text = "base64:" + base64.b64encode(payload[: limit * 3 // 4]).decode("ascii")
    if len(text) > limit:
        return text[: limit - 1] + "…"
    return text


def _cell(value: Any) -> str:
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


def messages_html(messages: Iterable[Message[Any]]) -> str:
    """An HTML table of messages: payload preview, key, properties, times, id, redeliveries."""
    rows = []
    for message in messages:
        properties = ", ".join(f"{k}={v}" for k, v in sorted(message.properties.items()))
        rows.append(
            "<tr>"
            + _cell(payload_preview(message.payload))
            + _cell(message.key)
            + _cell(properties)
            + _cell(message.publish_time.isoformat() if message.publish_time else None)
            + _cell(message.event_time.isoformat() if message.event_time else None)
            + _cell(message.message_id)
            + _cell(message.redelivery_count)
            + "</tr>"
        )
    head = "".join(
        f"<th>{name}</th>"
        for name in ("payload", "key", "properties", "published", "event time", "id", "redelivered")
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def acks_html(acks: Iterable[ProducerAck]) -> str:
    """An HTML table of producer acks: context, result, message id, error."""
    rows = "".join(
        "<tr>"
        + _cell(ack.context)
        + _cell(ack.result)
        + _cell(ack.message_id)
        + _cell(ack.error_message)
        + "</tr>"
        for ack in acks
    )
    head = "".join(f"<th>{n}</th>" for n in ("context", "result", "message id", "error"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
