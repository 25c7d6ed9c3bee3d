"""Opening a socket's broker-side half: a producer, a consumer (v1, v2, v3) or a reader."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable
from typing import Any, Protocol

import pulsar
from websockets.asyncio.server import ServerConnection

from rxstargate._service_rules.params import (
    ConsumerParams,
    ParamError,
    ProducerParams,
    ReaderParams,
)
from rxstargate._service_rules.paths import Endpoint, Route
from rxstargate.local._gateway._brokers import BrokerClients
from rxstargate.local._gateway._catalog import PatternError, TopicCatalog
from rxstargate.local._gateway._consumer import ConsumerSession
from rxstargate.local._gateway._key_order import KeyOrders
from rxstargate.local._gateway._producer import ProducerSession
from rxstargate.local._gateway._reader import ReaderSession
from rxstargate.local._gateway._redelivery import BROKER_NACK_DELAY_MS
from rxstargate.local._gateway._refusals import Refusal, creation_reason, creation_status
from rxstargate.local._gateway._subscriptions import (
    ProducerNames,
    SubscriptionBusyError,
    Subscriptions,
)

log = logging.getLogger("rxstargate.gateway")

# pulsar-lite's Key_Shared dispatch stops for good after a few dozen to a few hundred messages when
# a burst of unbatched messages with few distinct keys (or none) arrives for a consumer whose
# receiver queue is large (500 or more); with 100 it stops far more rarely (with the official
# client alone, 2 to 4 of 8 bursts without keys paused for 3 s or more). The socket's
# window still follows receiverQueueSize: only the broker-side prefetch is capped. (Not the stop at
# the write buffer's high-water mark: with the mark raised, see _broker, a queue of 1,000 still
# stopped after 27 to 2,386 of 3,000 messages with 7 keys or none, with the official client alone.)
KEY_SHARED_BROKER_QUEUE = 100

# pulsar-lite loses wake-ups (see _nudge); a consumer joining and leaving is the one nudge the
# gateway can give: Shared and Failover subscriptions admit one, an Exclusive subscription does
# not, and a Key_Shared one would move keys between sockets. Failover sockets were nudged against
# the stop at the write buffer's high-water mark, which local Pulsar now sets above any batch (see
# _broker), and still are: with the mark raised, pulsar-lite still loses wake-ups (many Shared
# subscriptions on one connection, tests/local/test_many_subscriptions.py, stall without nudges).
# Subscribing Exclusive sockets as Failover
# in pulsar-lite, to nudge them too, left an official client that subscribed after such a
# socket closed without the message that socket had not acked: they are not nudged.
_NUDGED = {"Failover": "Failover", "Shared": "Shared"}

# What a nudging helper calls itself: last in any order by name, so never a Failover
# subscription's active consumer.
NUDGE_CONSUMER_NAME = "~rxstargate-nudge"

_ROUTING = {
    "SinglePartition": "UseSinglePartition",
    "RoundRobinPartition": "RoundRobinDistribution",
    "CustomPartition": "UseSinglePartition",  # Pulsar ignores CustomPartition too
}


class Session(Protocol):
    """A socket's broker-side half."""

    async def run(self, connection: ServerConnection) -> None: ...

    async def close(self) -> None: ...


class PingPong:
    """The pingpong endpoint: pings are answered (by websockets), text is ignored."""

    async def run(self, connection: ServerConnection) -> None:
        """Read until the socket closes."""
        async for _ in connection:
            pass

    async def close(self) -> None:
        """Nothing to release."""
        return None


def _key_shared_policy() -> Any:
    """Key_Shared without pulsar-lite's redelivery blocking, which stalls a subscription for good.

    When a Key_Shared consumer goes away holding unacked messages (or nacks one), pulsar-lite
    queues them for redelivery and blocks their keys: it hands out one message per key and lets
    the next one go only after that one is acknowledged, but an acknowledgement does not make it
    dispatch again (only a flow command, a new message or a consumer leaving does). A consumer
    whose window is not yet half used sends no flow command, so the subscription stops for good
    after one message per key. With out-of-order delivery allowed the keys are not blocked, and
    pulsar-lite no longer keeps each key in order while consumers join and leave: the gateway
    does (``_key_order``). (pulsar-lite keeps the policy of a subscription's first consumer
    since it started: one first joined by another client without this setting keeps the
    blocking.)
    """
    return pulsar.ConsumerKeySharedPolicy(allow_out_of_order_delivery=True)


def _consumer_options(params: ConsumerParams, dead_letter: Any) -> dict[str, Any]:
    """The broker client's subscribe() arguments for a socket's consumer."""
    options: dict[str, Any] = {
        "consumer_type": getattr(pulsar.ConsumerType, params.subscription_type.replace("_", "")),
        "receiver_queue_size": params.receiver_queue_size,
        "consumer_name": params.consumer_name,
        # The socket's own delay runs in ConsumerSession (see _redelivery).
        "negative_ack_redelivery_delay_ms": BROKER_NACK_DELAY_MS,
        "initial_position": getattr(pulsar.InitialPosition, params.initial_position),
        "dead_letter_policy": dead_letter,
        "crypto_failure_action": getattr(
            pulsar.ConsumerCryptoFailureAction, params.crypto_failure_action
        ),
    }
    if params.subscription_type == "Key_Shared":
        options["receiver_queue_size"] = min(params.receiver_queue_size, KEY_SHARED_BROKER_QUEUE)
        options["key_shared_policy"] = _key_shared_policy()
    return options


def _dead_letter_policy(
    params: ConsumerParams, subscription: str, dead_letter_base: str | None
) -> Any:
    if params.max_redeliver_count is None:
        return None
    topic = params.dead_letter_topic
    if topic is None and dead_letter_base is not None:
        topic = f"{dead_letter_base}-{subscription}-DLQ"
    return pulsar.ConsumerDeadLetterPolicy(params.max_redeliver_count, topic)


def _kick(
    client: Any, target: str | list[str], subscription: str, broker_type: str
) -> Callable[[], None]:
    consumer_type = getattr(pulsar.ConsumerType, broker_type)

    def kick() -> None:
        # Joins with no permits (gets nothing) and leaves: the broker dispatches again.
        helper = client.subscribe(
            target,
            subscription,
            consumer_type=consumer_type,
            receiver_queue_size=0,
            consumer_name=NUDGE_CONSUMER_NAME,
        )
        helper.close()

    return kick


class Opener:
    """Creates the broker-side half of each socket, refusing what Pulsar would refuse.

    Used on the event loop only.
    """

    def __init__(self, clients: BrokerClients, catalog: TopicCatalog) -> None:
        self._clients = clients
        self._catalog = catalog
        self._subscriptions = Subscriptions()
        self._producer_names = ProducerNames()
        self._key_orders = KeyOrders()

    async def open(self, route: Route, query: dict[str, str], peer: str) -> Session:
        """The session for an accepted route.

        Raises:
            Refusal: with the status and reason Pulsar's WebSocket service would answer.
        """
        try:
            if route.endpoint is Endpoint.PRODUCER:
                return await self._producer(route.topic, ProducerParams.from_query(query))
            if route.endpoint is Endpoint.CONSUMER:
                if not route.subscription:
                    raise Refusal(400, "Empty subscription name")
                params = ConsumerParams.from_query(query)
                return await self._consumer(
                    (route.topic,), route.subscription, params, dead_letter_base=route.topic
                )
            if route.endpoint is Endpoint.MULTI_TOPIC_CONSUMER:
                return await self._multi_topic_consumer(route, query, peer)
            if route.endpoint is Endpoint.READER:
                return await self._reader(route.topic, ReaderParams.from_query(query))
        except ParamError as exc:
            raise Refusal(400, f"Invalid query params: {exc}") from None
        return PingPong()

    async def _producer(self, topic: str, params: ProducerParams) -> Session:
        if params.encryption_keys:
            raise Refusal(500, "Failed to create producer: encryption is not supported")
        options: dict[str, Any] = {
            "producer_name": params.producer_name,
            "initial_sequence_id": params.initial_sequence_id,
            "send_timeout_millis": params.send_timeout_millis,
            "compression_type": getattr(pulsar.CompressionType, params.compression_type),
            "block_if_queue_full": False,
            "batching_enabled": params.batching_enabled,
            "message_routing_mode": getattr(
                pulsar.PartitionsRoutingMode, _ROUTING[params.message_routing_mode]
            ),
            "max_pending_messages": params.max_pending_messages,
            "max_pending_messages_across_partitions": params.max_pending_messages,
        }
        if params.batching_enabled:
            options["batching_max_messages"] = params.batching_max_messages
            options["batching_max_publish_delay_ms"] = params.batching_max_publish_delay
        name = params.producer_name
        if name is not None:
            try:
                await self._producer_names.acquire(topic, name)
            except SubscriptionBusyError as exc:
                raise Refusal(409, f"Failed to create producer: {exc}") from None
        client = self._clients.main
        try:
            producer = await asyncio.to_thread(client.create_producer, topic, **options)
        except Exception as exc:
            if name is not None:
                self._producer_names.release(topic, name)
            raise Refusal(creation_status(exc), creation_reason("producer", exc)) from None
        self._catalog.note([topic])
        if name is None:
            return ProducerSession(producer)
        names = self._producer_names
        return ProducerSession(
            producer, lambda: names.closing(topic, name), lambda: names.release(topic, name)
        )

    async def _multi_topic_consumer(
        self, route: Route, query: dict[str, str], peer: str
    ) -> Session:
        """A v3 socket: the topics listed, or those the pattern matches now."""
        if not route.subscription:
            raise Refusal(400, "Empty subscription name")
        params = ConsumerParams.from_query(query)
        topics = route.topics
        dead_letter_base: str | None = route.topic
        if route.pattern is not None:
            try:
                matched = await asyncio.to_thread(self._catalog.match, route.pattern, route.topic)
            except PatternError as exc:
                raise Refusal(400, f"Invalid query params: {exc}") from None
            topics = tuple(matched)
            # Pulsar would name the dead-letter topic after the pattern; the broker client's
            # default (each topic's own <topic>-<subscription>-DLQ) is a topic name at least.
            dead_letter_base = None
            found = ", ".join(topics) or "none yet"
            log.info("%s %s: matches %d topics: %s", peer, route.label(), len(topics), found)
        return await self._consumer(
            topics, route.subscription, params, dead_letter_base=dead_letter_base, multi=True
        )

    async def _consumer(
        self,
        topics: tuple[str, ...],
        subscription: str,
        params: ConsumerParams,
        *,
        dead_letter_base: str | None,
        multi: bool = False,
    ) -> Session:
        """One broker consumer on one topic (v1, v2) or on several (v3, ``multi``)."""
        try:
            await self._subscriptions.acquire(topics, subscription, params.subscription_type)
        except SubscriptionBusyError as exc:
            raise Refusal(409, f"Failed to create consumer: {exc}") from None
        target: str | list[str] = list(topics) if multi else topics[0]
        key_shared = params.subscription_type == "Key_Shared"
        client = self._clients.lease(subscription) if key_shared else self._clients.main
        order = (
            self._key_orders.acquire((topics, subscription), subscription) if key_shared else None
        )

        def closed() -> None:
            self._subscriptions.release(topics, subscription)
            if key_shared:
                self._clients.release(subscription)
                self._key_orders.release((topics, subscription))

        try:
            dead_letter = _dead_letter_policy(params, subscription, dead_letter_base)
            options = _consumer_options(params, dead_letter)
            consumer = await asyncio.to_thread(client.subscribe, target, subscription, **options)
        except Exception as exc:
            self._subscriptions.release(topics, subscription, was_closing=False)
            if key_shared:
                self._clients.release(subscription)
                self._key_orders.release((topics, subscription))
            raise Refusal(creation_status(exc), creation_reason("consumer", exc)) from None
        self._catalog.note(topics)
        return ConsumerSession(
            consumer,
            params,
            pulsar.MessageId.deserialize,
            lambda: self._subscriptions.closing(topics, subscription),
            closed,
            # A pattern that matched nothing has no topic to nudge (nor messages to wait for).
            _kick(client, target, subscription, _NUDGED[params.subscription_type])
            if topics and params.subscription_type in _NUDGED
            else None,
            multi_topic=multi,
            key_order=order,
        )

    async def _reader(self, topic: str, params: ReaderParams) -> Session:
        client = self._clients.main

        def open_reader(start: Any) -> Any:
            return client.create_reader(
                topic,
                start,
                receiver_queue_size=params.receiver_queue_size,
                reader_name=params.reader_name,
            )

        try:
            if params.message_id == "earliest":
                start = pulsar.MessageId.earliest
            elif params.message_id == "latest":
                start = pulsar.MessageId.latest
            else:
                start = pulsar.MessageId.deserialize(
                    base64.b64decode(params.message_id, validate=True)
                )
            reader = await asyncio.to_thread(open_reader, start)
        except (binascii.Error, ValueError, Exception) as exc:
            raise Refusal(500, creation_reason("reader", exc)) from None
        self._catalog.note([topic])
        return ReaderSession(reader, params.receiver_queue_size, open_reader)
