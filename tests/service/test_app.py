"""rs.App against local Pulsar: bridges, dead letters, failures, readiness and restarts."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from reactivex import operators as ops

import rxstargate as rs
from tests.faults import FaultProxy, unacked_messages
from tests.service.conftest import WAIT, until

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_leaked_threads")]

FAST = rs.Backoff(initial=0.05, cap=0.2, jitter=0.0, give_up_after=None)


def everything(client: rs.Client, topic: str) -> list[rs.Message[Any]]:
    """Every message of ``topic`` now (those before a sentinel sent after them)."""
    client.topic(topic).producer().send(b"sentinel")
    messages: list[rs.Message[Any]] = (
        client.topic(topic)
        .observe(start="earliest")
        .pipe(ops.take_while(lambda m: m.payload != b"sentinel"), ops.to_list(), ops.timeout(WAIT))
        .run()
    )
    return messages


def shout(message: rs.Message[Any]) -> bytes:
    if message.payload == b"huge":
        return b"x" * 2_000_000  # over the 1 MiB frame limit: it cannot be stored
    return message.payload.upper()


def test_an_app_bridges_through_named_producers_and_acks_inputs_once_outputs_are_stored(
    pulsar: Any, topic_name: str
) -> None:
    app = rs.App(
        pulsar.ws_url,
        producers={
            "orders": rs.ProducerSpec(topic_name),
            "receipts": rs.ProducerSpec(topic_name + "-out"),
            "dlq": rs.ProducerSpec(topic_name + "-dlq"),
        },
        consumers={
            "billing": rs.ConsumerSpec(
                topic_name,
                "billing",
                handler=shout,
                concurrency=4,
                key_ordered=True,
                subscription_type="Key_Shared",
                publish_to="receipts",
                dead_letter_to="dlq",
            )
        },
    )
    payloads = [f"order-{i}".encode() for i in range(300)] + [b"huge"]
    with app:
        until(lambda: app.ready, "the app to be ready")
        for payload in payloads:
            app.producer("orders").send(payload, key=payload[-1:].decode())
        until(
            lambda: (
                app.metrics().streams["billing"].processed == 300
                and app.metrics().streams["billing"].dead_lettered == 1
            ),
            "the bridge to catch up",
        )
        figures = app.metrics()
        assert app.pipeline("billing").stats.processed == 300
    assert app.state == rs.service.AppState.STOPPED
    billing = figures.streams["billing"]
    assert (billing.failed, billing.dead_lettered, billing.handler_seconds.count) == (1, 1, 301)
    assert figures.producers["receipts"].acks == 300
    assert figures.producers["receipts"].failures == 1
    assert figures.producers["orders"].acks == len(payloads)
    with rs.Client(pulsar.ws_url) as client:
        outputs = everything(client, topic_name + "-out")
        assert sorted(m.payload for m in outputs) == sorted(p.upper() for p in payloads[:-1])
        assert all(m.key == m.payload[-1:].decode().lower() for m in outputs)
        [dead] = everything(client, topic_name + "-dlq")
        assert dead.payload == b"huge"
        assert "payload" in dead.properties["rxstargate-error"].lower()
    keys = {payload[-1:].decode() for payload in payloads}
    assert unacked_messages(pulsar.ws_url, topic_name, "billing", "Key_Shared", keys) == []


def test_wait_raises_what_failed_for_good_and_the_app_is_no_longer_ready(
    pulsar: Any, topic_name: str
) -> None:
    def fussy(message: rs.Message[Any]) -> None:
        if message.payload == b"boom":
            raise LookupError("no such order")

    app = rs.App(
        pulsar.ws_url,
        producers={"orders": rs.ProducerSpec(topic_name)},
        consumers={
            "billing": rs.ConsumerSpec(topic_name, "billing", handler=fussy, on_failure="error")
        },
    )
    with app:
        until(lambda: app.ready, "the app to be ready")
        app.producer("orders").send(b"fine")
        app.producer("orders").send(b"boom")
        with pytest.raises(LookupError, match="no such order"):
            app.wait(timeout=WAIT)
        assert not app.ready
        assert app.pipeline("billing").state == rs.PipelineState.FAILED
        assert isinstance(app.error, LookupError)


def test_a_reader_restarted_after_an_outage_goes_on_after_the_last_message_it_handled(
    pulsar: Any, topic_name: str
) -> None:
    with rs.Client(pulsar.ws_url) as setup:
        producer = setup.topic(topic_name).producer()
        for i in range(400):
            producer.send_async(str(i).encode())
        producer.flush(WAIT)
    handled: list[int] = []
    port = int(pulsar.ws_url.rsplit(":", 1)[1])
    with FaultProxy(port) as proxy:

        def audit(message: rs.Message[Any]) -> None:
            handled.append(int(message.payload))
            if len(handled) == 150:  # the server goes away for longer than the client waits
                proxy.refuse()
                proxy.reset()

        app = rs.App(
            proxy.ws_url,
            reconnect=rs.Backoff(initial=0.05, cap=0.1, jitter=0.0, give_up_after=0.2),
            readers={
                "audit": rs.ReaderSpec(
                    topic_name, handler=audit, start="earliest", restart=FAST, max_in_flight=10
                )
            },
        )
        with app:
            until(lambda: app.pipeline("audit").restarts >= 1, "the reader to be restarted")
            proxy.refuse(False)
            until(lambda: len(handled) >= 400, "the reader to read everything")
            figures = app.metrics().streams["audit"]  # it reopened to read on
    assert handled == list(range(400))  # nothing twice, nothing skipped
    assert figures.restarts >= 1 and figures.reconnects >= 1


def test_an_app_on_your_client_closes_its_producers_and_leaves_the_client_open(
    pulsar: Any, topic_name: str
) -> None:
    seen = threading.Event()
    with rs.Client(pulsar.ws_url) as client:
        app = rs.App(
            client=client,
            producers={"orders": rs.ProducerSpec(topic_name)},
            readers={"tail": rs.ReaderSpec(topic_name, handler=lambda m: seen.set())},
        )
        with app:
            until(lambda: app.ready, "the app to be ready")
            app.producer("orders").send(b"hello")
            assert seen.wait(WAIT)
        assert not client.closed
        assert client.streams == []  # the app's reader and producer are gone
        assert client.topic(topic_name).producer().send(b"still works").ok


def test_a_handler_may_stop_its_own_app_and_its_message_is_still_settled(
    pulsar: Any, topic_name: str
) -> None:
    def last_order(message: rs.Message[Any]) -> None:
        if message.payload == b"closing time":
            app.stop()

    app = rs.App(
        pulsar.ws_url,
        producers={"orders": rs.ProducerSpec(topic_name)},
        consumers={"billing": rs.ConsumerSpec(topic_name, "billing", handler=last_order)},
    )
    with app:
        until(lambda: app.ready, "the app to be ready")
        app.producer("orders").send(b"closing time")
        app.wait(timeout=WAIT)
    assert app.state == rs.service.AppState.STOPPED
    assert app.metrics().streams["billing"].processed == 1
    assert unacked_messages(pulsar.ws_url, topic_name, "billing", "Shared") == []
