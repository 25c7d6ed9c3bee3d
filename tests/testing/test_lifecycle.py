"""MemoryPulsar's own life: closing, threads, real time, its clients, and its arguments."""

from __future__ import annotations

import threading

import pytest
from reactivex.testing import TestScheduler

import rxstargate as rs
from rxstargate.testing import MemoryPulsar, NoSubscriptionError
from tests.testing.conftest import Inbox, received


def test_closing_it_closes_its_clients_and_leaves_no_thread(no_leaked_threads: None) -> None:
    pulsar = MemoryPulsar()
    client = pulsar.client()
    inbox = Inbox()
    client.topic("orders").observe("sub").subscribe(inbox)
    client.topic("orders").producer().send(b"x")
    pulsar.close()
    assert client.closed and inbox.completed
    assert not [t for t in threading.enumerate() if t.name.startswith("rxstargate")]
    assert [m.payload for m in pulsar.stored("orders")] == [b"x"]  # still readable


def test_a_client_of_ones_own_cannot_reconnect_once_it_closed(no_leaked_threads: None) -> None:
    pulsar = MemoryPulsar()
    quick = rs.Backoff(initial=0.01)  # its one reconnect is refused for good
    with rs.Client(MemoryPulsar.url, connect=pulsar.connect, reconnect=quick) as client:
        inbox = Inbox()
        client.topic("orders").observe("sub").subscribe(inbox)
        pulsar.wait_until(lambda: len(pulsar.sockets()) == 1)
        pulsar.close()
        pulsar.wait_until(lambda: bool(inbox.errors))
        error = inbox.errors[0]
        assert isinstance(error, rs.StargateConnectionError) and not error.retriable
        assert "closed" in str(error)


def test_delays_run_in_real_time_by_default_and_close_cancels_them(
    no_leaked_threads: None,
) -> None:
    with MemoryPulsar() as pulsar:
        client = pulsar.client()
        pulsar.publish("orders", b"again")
        inbox = Inbox()
        client.topic("orders").observe(
            "sub", start="earliest", negative_ack_redelivery_delay=10, ack_timeout_millis=60_000
        ).subscribe(inbox)
        first = received(pulsar, inbox, 1)[0]
        first.nack()
        second = received(pulsar, inbox, 2)[1]
        assert second.redelivery_count == 1
        timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
        assert timers, "the ack timeout waits on a timer"
    for timer in timers:
        timer.join(5)
        assert not timer.is_alive()


def test_publish_times_follow_the_scheduler(pulsar: MemoryPulsar, scheduler: TestScheduler) -> None:
    scheduler.advance_to(90.5)
    pulsar.publish("orders", b"x")
    (stored,) = pulsar.stored("orders")
    assert stored.publish_time is not None and stored.publish_time.timestamp() == 90.5


def test_sockets_lists_who_is_connected(pulsar: MemoryPulsar, client: rs.Client) -> None:
    client.topic("orders").producer(producer_name="p1").send(b"x")
    client.topic("orders").observe("sub", subscription_type="Shared", consumer_name="c1").subscribe(
        Inbox()
    )
    pulsar.wait_until(lambda: len(pulsar.sockets()) == 2)
    producer, consumer = pulsar.sockets()
    assert (producer.kind, producer.name) == ("producer", "p1")
    assert (consumer.kind, consumer.subscription, consumer.subscription_type, consumer.name) == (
        "consumer",
        "sub",
        "Shared",
        "c1",
    )
    assert consumer.topics == ("persistent://public/default/orders",)


def test_a_subscription_can_be_made_before_its_consumer(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    pulsar.create_subscription("orders", "billing", start="earliest")
    pulsar.publish("orders", b"x")
    assert pulsar.backlog("orders", "billing") == 1
    inbox = Inbox(ack=True)
    client.topic("orders").observe("billing").subscribe(inbox)  # latest: it exists already
    received(pulsar, inbox, 1)
    pulsar.wait_until(lambda: pulsar.backlog("orders", "billing") == 0)


def test_wait_until_gives_up_with_a_timeout_error(pulsar: MemoryPulsar) -> None:
    with pytest.raises(rs.StargateTimeoutError):
        pulsar.wait_until(lambda: False, timeout=0.05)
    pulsar.create_subscription("orders", "billing")
    with pytest.raises(rs.StargateTimeoutError, match="no subscription 'biling'") as caught:
        pulsar.wait_until(lambda: pulsar.backlog("orders", "biling") == 0, timeout=0.05)
    assert isinstance(caught.value.__cause__, NoSubscriptionError)


def test_waiting_for_a_subscription_not_made_yet_waits_for_its_consumer(
    pulsar: MemoryPulsar, client: rs.Client
) -> None:
    pulsar.publish("orders", b"x")
    client.topic("orders").observe("billing", start="earliest").subscribe(rs.acknowledger())
    pulsar.wait_until(lambda: pulsar.backlog("orders", "billing") == 0)


def test_bad_arguments_are_configuration_errors(pulsar: MemoryPulsar) -> None:
    pulsar.publish("orders", b"x")
    pulsar.create_subscription("orders", "billing")
    with pytest.raises(rs.ConfigurationError, match="billing"):
        pulsar.backlog("orders", "biling")
    with pytest.raises(rs.ConfigurationError):
        pulsar.refuse_next(status=200)
    with pytest.raises(rs.ConfigurationError):
        pulsar.drop_next("everything")
    with pytest.raises(rs.ConfigurationError):
        pulsar.fail_next_send(count=0)
    with pytest.raises(rs.ConfigurationError):
        pulsar.client(connect=pulsar.connect)
    with pytest.raises(rs.InvalidTopicNameError):
        pulsar.publish("a/b", b"x")
    with pytest.raises(rs.ConfigurationError):
        pulsar.publish("orders", 42)  # type: ignore[arg-type]
    with pytest.raises(rs.ConfigurationError):
        MemoryPulsar(scheduler="now")  # type: ignore[arg-type]
    with pytest.raises(rs.ConfigurationError):
        rs.Client("ws://h:1", connect="not callable")  # type: ignore[arg-type]


def test_the_testing_package_exports_what_it_has() -> None:
    import rxstargate.testing as testing

    public = {name for name in dir(testing) if not name.startswith("_")}
    assert testing.__all__ == sorted(testing.__all__)
    assert set(testing.__all__) == public
