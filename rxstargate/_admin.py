"""The bits of Pulsar's admin REST API rxstargate uses, on the WebSocket service's HTTP port."""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from rxstargate._config import TlsOptions, TransportConfig, redact_url
from rxstargate.exceptions import (
    ConfigurationError,
    ProtocolError,
    StargateConnectionError,
    handshake_error_for_status,
)
from rxstargate.models import MessageId, TopicName

__all__ = ["last_message_id"]


def _http_base(ws_base: str) -> str:
    if ws_base.startswith("wss://"):
        return "https://" + ws_base.removeprefix("wss://")
    return "http://" + ws_base.removeprefix("ws://")


def last_message_id(base_url: str, topic: TopicName, config: TransportConfig) -> MessageId | None:
    """The id of the topic's last stored message, or None when it has none.

    ``GET /admin/v2/{domain}/{tenant}/{namespace}/{topic}/lastMessageId``, on the HTTP port of
    the WebSocket URL, with the client's token and TLS settings.

    Raises:
        ConfigurationError: when Python's HTTP client cannot use the URL's host or port.
        HandshakeError: a typed subclass when the server refuses (401, 403, 404, 5xx...).
        StargateConnectionError: when the server cannot be reached in ``connect_timeout``.
        ProtocolError: when the answer is not a message id.
    """
    path = "/".join(
        quote(part, safe="")
        for part in (topic.persistence.value, topic.tenant, topic.namespace, topic.topic)
    )
    url = f"{_http_base(base_url)}/admin/v2/{path}/lastMessageId"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if config.token:
        request.add_header("Authorization", f"Bearer {config.token}")
    context: ssl.SSLContext | None = None
    if url.startswith("https:"):
        options = (config.tls or TlsOptions()).sslopt()
        context = options["context"]  # type: ignore[assignment]
    try:
        with urllib.request.urlopen(request, timeout=config.connect_timeout, context=context) as r:
            body: Any = json.loads(r.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        reason = exc.read().decode("utf-8", "replace")[:500]
        raise handshake_error_for_status(exc.code, reason, redact_url(url)) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise StargateConnectionError(f"cannot reach {redact_url(url)}: {exc}") from exc
    except http.client.InvalidURL as exc:  # a host or port Python's HTTP client refuses
        raise ConfigurationError(f"url cannot be used: {exc}") from None
    except http.client.HTTPException as exc:  # a garbled answer: not a ValueError
        raise ProtocolError(f"{redact_url(url)}: {type(exc).__name__}: {exc}") from exc
    except ValueError as exc:
        raise ProtocolError(f"{redact_url(url)} did not answer JSON: {exc}") from exc
    try:
        ledger, entry = int(body["ledgerId"]), int(body["entryId"])
        partition = int(body.get("partitionIndex", -1))
        batch = int(body.get("batchIndex", -1))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"unexpected lastMessageId answer {body!r}") from exc
    if ledger < 0 or entry < 0:
        return None
    return MessageId.from_parts(ledger, entry, partition, batch)
