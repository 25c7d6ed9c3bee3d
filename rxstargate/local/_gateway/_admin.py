"""The one admin REST call the gateway answers: a topic's last message id.

``GET /admin/v2/{persistent|non-persistent}/{tenant}/{namespace}/{topic}/lastMessageId`` answers
``{"ledgerId": L, "entryId": E, "partitionIndex": -1}`` as Pulsar's admin API does, with an
``entryId`` of -1 when the topic has no message (Pulsar then gives its current ledger; pulsar-lite
has none to give, so ``ledgerId`` is -1 too). Pulsar refuses the call for non-persistent topics
(405); a topic that does not exist yet is created, as the WebSocket endpoints create theirs.

The broker client has no admin API and its readers do not expose the last message id, so the
id comes from a consumer on a temporary subscription (Exclusive, no prefetch), which is
unsubscribed afterwards.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any
from urllib.parse import unquote_plus

import pulsar

from rxstargate._service_rules.vocabulary import is_named_entity
from rxstargate.local._gateway._refusals import creation_status

log = logging.getLogger("rxstargate.gateway")

_LAST_MESSAGE_ID = re.compile(
    r"/admin/v2/(?P<domain>[^/]+)/(?P<tenant>[^/]+)/(?P<namespace>[^/]+)/(?P<topic>[^/]+)"
    r"/lastMessageId/?"
)
TEMPORARY_SUBSCRIPTION_PREFIX = "rxstargate-last-message-id-"


class AdminError(Exception):
    """An admin request to refuse with an HTTP status and Pulsar's ``{"reason": ...}``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def admin_topic(path: str) -> str:
    """The full topic name of a ``lastMessageId`` request path.

    Raises:
        AdminError: 404 for any other path or a malformed name, 405 for a non-persistent topic.
    """
    match = _LAST_MESSAGE_ID.fullmatch(path)
    if match is None:
        raise AdminError(404, "Not Found")
    domain = match["domain"]
    tenant, namespace = unquote_plus(match["tenant"]), unquote_plus(match["namespace"])
    local = unquote_plus(match["topic"])
    if domain not in ("persistent", "non-persistent"):
        raise AdminError(404, "Not Found")
    if not (is_named_entity(tenant) and is_named_entity(namespace)) or not local:
        raise AdminError(412, f"Invalid topic name: {tenant}/{namespace}/{local}")
    if domain == "non-persistent":
        raise AdminError(405, "GetLastMessageId on a non-persistent topic is not allowed")
    return f"{domain}://{tenant}/{namespace}/{local}"


def last_message_id(client: Any, topic: str) -> dict[str, int]:
    """The admin answer for ``topic`` (blocking: run it in a thread).

    Raises:
        AdminError: when the broker cannot be asked.
    """
    subscription = TEMPORARY_SUBSCRIPTION_PREFIX + uuid.uuid4().hex
    try:
        consumer = client.subscribe(
            topic,
            subscription,
            consumer_type=pulsar.ConsumerType.Exclusive,
            receiver_queue_size=0,
            initial_position=pulsar.InitialPosition.Latest,
        )
    except Exception as exc:
        raise AdminError(creation_status(exc), f"Failed to get last message id: {exc}") from None
    try:
        try:
            message_id = consumer.get_last_message_id()
        except Exception as exc:
            # pulsar-lite answers "Topic has no messages" as an UnknownError.
            if type(exc).__name__ == "UnknownError":
                return {"ledgerId": -1, "entryId": -1, "partitionIndex": -1}
            raise AdminError(500, f"Failed to get last message id: {exc}") from None
    finally:
        _let_go(consumer, topic, subscription)
    answer = {
        "ledgerId": message_id.ledger_id(),
        "entryId": message_id.entry_id(),
        "partitionIndex": message_id.partition(),
    }
    if message_id.batch_index() >= 0:
        answer["batchIndex"] = message_id.batch_index()
    return answer


def _let_go(consumer: Any, topic: str, subscription: str) -> None:
    try:
        consumer.unsubscribe()
    except Exception as exc:
        log.warning("temporary subscription %s on %s left behind: %s", subscription, topic, exc)
    try:
        consumer.close()
    except Exception as exc:  # already closed by the unsubscribe
        log.debug("closing the temporary consumer: %s", exc)
