"""Consumers on MemoryPulsar: credit, acks, nacks, ack timeouts, dead letters, the four types."""

from __future__ import annotations

from typing import Any

import pytest
from reactivex.testing import TestScheduler

import rxstargate as rs
from rxstargate.testing import MemoryPulsar
from tests.testing.conftest import Inbox, received


def _fill(pulsar: MemoryPulsar, count: int, topic: str = "orders", **fields: Any) -> None:
    for i in range(count):
        pulsar.publish(topic, str(i).encode(), **fields)


def test_a_consumer_holds_at_most_max_in_flight_unsettled(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    _fill(pulsar, 20)
    inbox = Inbox()
    client.topic("orders").observe("sub", start="earliest", max_in_flight=5).subscribe(inbox)
    held = received(pulsar, inbox, 5)
    assert pulsar.unacked("orders", "sub") == 5 and len(inbox) == 5
    for message in held:
        message.ack()
    received(pulsar, inbox, 10)
    assert pulsar.backlog("orders", "sub") == 15


def test_acks_empty_the_backlog(pulsar: MemoryPulsar, client: rs.Client) -> None:
    _fill(pulsar, 10)
    inbox = Inbox(ack=True)
    client.topic("orders").observe("sub", start="earliest").subscribe(inbox)
    assert [m.payload for m in received(pulsar, inbox, 10)] == [str(i).encode() for i in range(10)]
    pulsar.wait_until(lambda: pulsar.backlog("orders", "sub") == 0)
    assert pulsar.unacked("orders", "sub") == 0


def test_a_new_subscription_starts_at_latest_unless_told(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    pulsar.publish("orders", b"old")
    inbox = Inbox(ack=True)
    client.topic("orders").observe("sub").subscribe(inbox)
    pulsar.wait_until(lambda: "sub" in pulsar.subscriptions("orders"))
    pulsar.publish("orders", b"new")
    assert [m.payload for m in received(pulsar, inbox, 1)] == [b"new"]
    assert pulsar.backlog("orders", "sub") == 0


def test_a_nacked_message_comes_back_after_the_delay_with_its_count(
    pulsar: MemoryPulsar, client: rs.Client, scheduler: TestScheduler
) -> None:
    pulsar.publish("orders", b"again")
    inbox = Inbox()
    client.topic("orders").observe(
        "sub", start="earliest", negative_ack_redelivery_delay=30_000
    ).subscribe(inbox)
    (first,) = received(pulsar, inbox, 1)
    nacked_at = scheduler.clock
    first.nack()
    second = received(pulsar, inbox, 2)[1]
    assert scheduler.clock - nacked_at >= 30.0  # virtual seconds: the test did not wait them
    assert (second.message_id, second.redelivery_count) == (first.message_id, 1)


def test_a_message_nacked_too_often_goes_to_the_default_dead_letter_topic(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    original = pulsar.publish("orders", b"poison", key="k", properties={"a": "b"})
    inbox = Inbox()
    client.topic("orders").observe(
        "billing",
        start="earliest",
        subscription_type="Shared",
        negative_ack_redelivery_delay=1000,
        max_redeliver_count=2,
    ).subscribe(lambda m: (inbox.on_next(m), m.nack()))
    dead = "persistent://public/default/orders-billing-DLQ"
    pulsar.wait_until(lambda: bool(pulsar.stored(dead)))
    assert [m.redelivery_count for m in inbox.messages] == [0, 1, 2]
    (buried,) = pulsar.stored(dead)
    assert (buried.payload, buried.key) == (b"poison", "k")
    assert buried.properties["a"] == "b"
    assert buried.properties["REAL_TOPIC"] == "persistent://public/default/orders"
    assert buried.properties["ORIGIN_MESSAGE_ID"] == f"{original.ledger_id}:0:-1"
    assert pulsar.backlog("orders", "billing") == 0


def test_a_dead_letter_topic_of_ones_own_is_used(pulsar: MemoryPulsar, client: rs.Client) -> None:
    pulsar.publish("orders", b"poison")
    client.topic("orders").observe(
        "billing",
        start="earliest",
        negative_ack_redelivery_delay=0,
        max_redeliver_count=1,
        dead_letter_topic="graveyard",
    ).subscribe(lambda m: m.nack())
    pulsar.wait_until(lambda: bool(pulsar.stored("graveyard")))
    assert pulsar.stored("graveyard")[0].payload == b"poison"


def test_an_unacked_message_comes_back_after_the_ack_timeout(
    pulsar: MemoryPulsar, client: rs.Client, scheduler: TestScheduler
) -> None:
    pulsar.publish("orders", b"slow")
    inbox = Inbox()
    client.topic("orders").observe("sub", start="earliest", ack_timeout_millis=5000).subscribe(
        inbox
    )
    first, again = received(pulsar, inbox, 2)
    assert scheduler.clock >= 5.0
    assert again.message_id == first.message_id
    assert again.redelivery_count == first.redelivery_count + 1
    again.ack()
    pulsar.wait_until(lambda: pulsar.backlog("orders", "sub") == 0)


def test_ack_timeouts_count_towards_the_dead_letter_policy(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    pulsar.publish("orders", b"poison")
    inbox = Inbox()
    client.topic("orders").observe(
        "sub",
        start="earliest",
        subscription_type="Shared",
        ack_timeout_millis=1000,
        max_redeliver_count=1,
    ).subscribe(inbox)
    dead = "orders-sub-DLQ"
    pulsar.wait_until(lambda: bool(pulsar.stored(dead)) and len(inbox) == 2)
    assert [m.redelivery_count for m in inbox.messages] == [0, 1]
    assert pulsar.backlog("orders", "sub") == 0


# The newcomer comes from a client of its own, as from another program: a client that holds
# the subscription itself waits until its own consumer could have left (close_timeout and a
# second) before it takes the refusal (tests/client/test_lifecycle.py).


def test_a_second_exclusive_consumer_is_refused_with_409(pulsar: MemoryPulsar) -> None:
    first, second = Inbox(), Inbox()
    pulsar.client().topic("orders").observe("sub").subscribe(first)
    pulsar.wait_until(lambda: len(pulsar.sockets("consumer")) == 1)
    pulsar.client().topic("orders").observe("sub").subscribe(second)
    pulsar.wait_until(lambda: bool(second.errors))
    error = second.errors[0]
    assert isinstance(error, rs.ConflictError) and error.status_code == 409
    assert "Exclusive consumer is already connected" in error.reason
    assert not first.errors


def test_another_type_on_a_held_subscription_is_refused(pulsar: MemoryPulsar) -> None:
    inbox = Inbox()
    pulsar.client().topic("orders").observe("sub", subscription_type="Shared").subscribe(Inbox())
    pulsar.wait_until(lambda: len(pulsar.sockets("consumer")) == 1)
    pulsar.client().topic("orders").observe("sub", subscription_type="Failover").subscribe(inbox)
    pulsar.wait_until(lambda: bool(inbox.errors))
    assert "different type" in str(inbox.errors[0])


def test_shared_consumers_take_turns(pulsar: MemoryPulsar, client: rs.Client) -> None:
    topic = client.topic("orders")
    inboxes = [Inbox(ack=True), Inbox(ack=True)]
    for inbox in inboxes:
        topic.observe("sub", subscription_type="Shared").subscribe(inbox)
    pulsar.wait_until(lambda: [s.permits for s in pulsar.sockets("consumer")] == [1000, 1000])
    _fill(pulsar, 10)
    pulsar.wait_until(lambda: sum(map(len, inboxes)) == 10)
    assert [len(inbox) for inbox in inboxes] == [5, 5]
    assert sorted(inboxes[0].payloads + inboxes[1].payloads) == sorted(
        str(i).encode() for i in range(10)
    )


def test_failover_delivers_to_one_consumer_and_hands_over_when_it_leaves(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    topic = client.topic("orders")
    active, standby = Inbox(), Inbox(ack=True)
    first = topic.observe("sub", subscription_type="Failover").subscribe(active)
    pulsar.wait_until(lambda: len(pulsar.sockets("consumer")) == 1)
    topic.observe("sub", subscription_type="Failover").subscribe(standby)
    pulsar.wait_until(lambda: len(pulsar.sockets("consumer")) == 2)
    _fill(pulsar, 4)
    received(pulsar, active, 4)
    assert len(standby) == 0
    first.dispose()  # leaves holding all four, unacked
    taken = received(pulsar, standby, 4)
    assert [(m.payload, m.redelivery_count) for m in taken] == [
        (str(i).encode(), 1) for i in range(4)
    ]


def test_key_shared_keeps_each_key_on_one_consumer_in_order(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    topic = client.topic("orders")
    inboxes = [Inbox(ack=True) for _ in range(3)]
    for inbox in inboxes:
        topic.observe("sub", subscription_type="Key_Shared").subscribe(inbox)
    pulsar.wait_until(lambda: len(pulsar.sockets("consumer")) == 3)
    for i in range(60):
        pulsar.publish("orders", str(i).encode(), key=f"k{i % 6}")
    pulsar.wait_until(lambda: sum(map(len, inboxes)) == 60)
    keys = [{m.key for m in inbox.messages} for inbox in inboxes]
    assert sum(len(k) for k in keys) == 6, "no key reached two consumers"
    for inbox in inboxes:
        for key in {m.key for m in inbox.messages}:
            numbers = [int(m.payload) for m in inbox.messages if m.key == key]
            assert numbers == sorted(numbers)


def test_what_a_consumer_held_comes_again_when_its_socket_goes(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    _fill(pulsar, 3)
    held = Inbox()
    subscription = client.topic("orders").observe("sub", start="earliest").subscribe(held)
    received(pulsar, held, 3)
    subscription.dispose()
    assert pulsar.unacked("orders", "sub") == 0
    again = Inbox(ack=True)
    client.topic("orders").observe("sub").subscribe(again)
    assert [(m.payload, m.redelivery_count) for m in received(pulsar, again, 3)] == [
        (b"0", 1),
        (b"1", 1),
        (b"2", 1),
    ]


def test_a_consumer_resumes_after_a_cut_without_losing_a_message(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    inbox = Inbox(ack=True)
    client.topic("orders").observe(
        "sub", start="earliest", subscription_type="Shared", max_in_flight=10
    ).subscribe(inbox)
    _fill(pulsar, 50)
    pulsar.wait_until(lambda: len(inbox) >= 20)
    assert pulsar.cut() >= 1
    _fill(pulsar, 50)
    pulsar.wait_until(lambda: pulsar.backlog("orders", "sub") == 0)
    assert set(inbox.payloads) == {str(i).encode() for i in range(50)}
    assert not inbox.errors


def test_a_lost_ack_is_reported_and_its_message_comes_again(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    pulsar.publish("orders", b"x")
    errors: list[rs.StargateError] = []
    client.errors.subscribe(errors.append)
    acknowledger = rs.acknowledger()
    inbox = Inbox()

    def on_next(message: rs.Message[Any]) -> None:
        if not len(inbox):
            pulsar.drop_next("settle", topic="orders")  # the first ack is lost
        inbox.on_next(message)
        acknowledger.on_next(message)

    client.topic("orders").observe("sub", start="earliest").subscribe(on_next)
    pulsar.wait_until(lambda: len(inbox) >= 2 and pulsar.backlog("orders", "sub") == 0)
    assert any(isinstance(e, rs.AckError) for e in errors)
    assert acknowledger.failed == 1 and acknowledger.acked == 1
    assert [m.redelivery_count for m in inbox.messages] == [0, 1]


@pytest.mark.parametrize("kind", ["Shared", "Key_Shared"])
def test_several_topics_are_consumed_as_one_stream(
    pulsar: MemoryPulsar, client: rs.Client, kind: str
) -> None:
    pulsar.publish("orders", b"o")
    pulsar.publish("refunds", b"r")
    inbox = Inbox(ack=True)
    client.topics(["orders", "refunds"]).observe(
        "audit", start="earliest", subscription_type=kind
    ).subscribe(inbox)
    got = received(pulsar, inbox, 2)
    assert {(m.topic.topic, m.payload) for m in got} == {("orders", b"o"), ("refunds", b"r")}
    pulsar.wait_until(
        lambda: pulsar.backlog("orders", "audit") == 0 and pulsar.backlog("refunds", "audit") == 0
    )
