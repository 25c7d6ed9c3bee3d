"""publish(): what happens to an input whose output the broker fails, and the threads it uses.

On MemoryPulsar, which can fail a topic's next sends the way a broker that could not store
them answers.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import reactivex as rx
from reactivex import operators as ops

import rxstargate as rs
from rxstargate import operators as rso

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

WAIT = 15.0


def stored_payloads(client: rs.Client, topic: str) -> list[bytes]:
    """The payloads of ``topic``, in order, up to a sentinel sent now."""
    target = client.topic(topic)
    target.producer().send(b"sentinel")
    messages: list[rs.Message[Any]] = (
        target.observe(start="earliest")
        .pipe(ops.take_while(lambda m: m.payload != b"sentinel"), ops.to_list(), ops.timeout(WAIT))
        .run()
    )
    return [m.payload for m in messages]


def test_an_input_whose_output_failed_is_nacked_and_bridged_when_it_comes_again(
    memory: Any, client: rs.Client, topic_name: str
) -> None:
    source, out = client.topic(topic_name), topic_name + "-out"
    source.producer().send(b"a")
    source.producer().send(b"b")
    memory.fail_next_send(out)  # the first output fails: its input is nacked
    passed: list[bytes] = []
    done = threading.Event()
    producer = client.topic(out).producer()
    stream = source.observe("bridge", start="earliest", negative_ack_redelivery_delay=10)
    handle = stream.pipe(
        rso.publish(producer), ops.do_action(lambda m: passed.append(m.payload)), ops.take(2)
    ).subscribe(rs.acknowledger(on_completed=done.set))
    assert done.wait(WAIT)
    handle.dispose()
    producer.close()
    assert sorted(passed) == [b"a", b"b"]
    assert sorted(stored_payloads(client, out)) == [b"a", b"b"]


def test_an_input_whose_output_failed_is_dead_lettered_and_acked(
    memory: Any, client: rs.Client, topic_name: str
) -> None:
    source, out = client.topic(topic_name), topic_name + "-out"
    for payload in (b"a", b"b", b"c"):
        source.producer().send(payload)
    memory.fail_next_send(out)
    producer, dlq = client.topic(out).producer(), client.topic(topic_name + "-dlq").producer()
    passed: list[bytes] = []
    handle = (
        source.observe("bridge", start="earliest")
        .pipe(
            rso.publish(producer, on_failure=rso.dead_letter(dlq)),
            ops.do_action(lambda m: passed.append(m.payload)),
        )
        .subscribe(rs.acknowledger())
    )
    # the dead-lettered input is acked once its copy is stored, maybe after the others
    memory.wait_until(lambda: memory.backlog(topic_name, "bridge") == 0, WAIT)
    handle.dispose()
    producer.close()
    dlq.close()
    assert passed == [b"b", b"c"]
    assert stored_payloads(client, topic_name + "-dlq") == [b"a"]
    assert stored_payloads(client, out) == [b"b", b"c"]


def test_an_output_that_failed_ends_the_stream_with_its_error_under_the_error_policy(
    memory: Any, client: rs.Client, topic_name: str
) -> None:
    source, out = client.topic(topic_name), topic_name + "-out"
    source.producer().send(b"a")
    memory.fail_next_send(out, error="Failed to send message: TopicTerminated")
    errors: list[Exception] = []
    ended = threading.Event()
    producer = client.topic(out).producer()
    handle = (
        source.observe("bridge", start="earliest")
        .pipe(rso.publish(producer, on_failure="error"))
        .subscribe(on_error=lambda e: (errors.append(e), ended.set()), on_completed=ended.set)
    )
    assert ended.wait(WAIT)
    handle.dispose()
    producer.close()
    assert len(errors) == 1 and isinstance(errors[0], rs.SendError)
    assert "TopicTerminated" in str(errors[0])


def test_the_producers_acks_observers_see_every_output_of_a_bridge(
    client: rs.Client, topic_name: str
) -> None:
    source, out = client.topic(topic_name), topic_name + "-out"
    for i in range(50):
        source.producer().send(str(i).encode())
    producer = client.topic(out).producer(max_in_flight=8)
    acks: list[rs.ProducerAck] = []
    producer.acks.subscribe(acks.append)
    passed: list[bytes] = []
    done = threading.Event()
    handle = (
        source.observe("bridge", start="earliest")
        .pipe(
            rso.publish(producer), ops.do_action(lambda m: passed.append(m.payload)), ops.take(50)
        )
        .subscribe(rs.acknowledger(on_completed=done.set))
    )
    assert done.wait(WAIT)
    handle.dispose()
    producer.flush(WAIT)
    producer.close()
    assert sorted(passed) == sorted(str(i).encode() for i in range(50))
    assert len(acks) == 50 and all(ack.ok for ack in acks)


def test_the_acks_observers_of_a_bridge_see_each_outputs_own_context_and_stored_id(
    client: rs.Client, topic_name: str
) -> None:
    source, out = client.topic(topic_name), topic_name + "-out"
    for i in range(20):
        source.producer().send(str(i).encode())
    producer = client.topic(out).producer(max_in_flight=4)
    acks: list[rs.ProducerAck] = []
    producer.acks.subscribe(acks.append)
    done = threading.Event()
    handle = (
        source.observe("bridge", start="earliest")
        .pipe(rso.publish(producer), ops.take(20))
        .subscribe(rs.acknowledger(on_completed=done.set))
    )
    assert done.wait(WAIT)
    handle.dispose()
    producer.flush(WAIT)
    producer.close()
    assert sorted(int(ack.context) for ack in acks) == list(range(1, 21))
    assert all(ack.ok and ack.message_id is not None for ack in acks)
    assert len({ack.message_id for ack in acks}) == 20


def test_a_bridge_hands_its_outputs_acks_to_its_own_thread_without_the_producers_acks_thread(
    client: rs.Client, topic_name: str
) -> None:
    source, out = client.topic(topic_name), topic_name + "-out"
    for i in range(20):
        source.producer().send(str(i).encode())
    threads: set[str] = set()
    done = threading.Event()

    def on_item(message: rs.Message[Any]) -> None:
        threads.update(thread.name for thread in threading.enumerate())

    producer = client.topic(out).producer()
    handle = (
        source.observe("bridge", start="earliest")
        .pipe(rso.publish(producer), ops.do_action(on_item), ops.take(20))
        .subscribe(rs.acknowledger(on_completed=done.set))
    )
    assert done.wait(WAIT)
    handle.dispose()
    producer.close()
    assert any(name.startswith("rxstargate-publish-") for name in threads)
    assert not any(name.startswith("rxstargate-acks-") for name in threads)


def test_outputs_settled_together_pass_their_inputs_on_in_order_around_a_failed_one(
    client: rs.Client, topic_name: str, make_message: Any, settler: Any
) -> None:
    from rxstargate.operators._publish import _Publishing

    x, y, z = (make_message(payload) for payload in (b"x", b"y", b"z"))
    seen: list[tuple[bytes, str]] = []
    nacked_before_z: list[bytes] = []
    last = threading.Event()

    def on_next(message: rs.Message[Any]) -> None:
        seen.append((message.payload, threading.current_thread().name))
        if message is z:
            nacked_before_z.extend(settler.nacked)
            last.set()

    producer = client.topic(topic_name).producer()
    publishing: _Publishing[Any] = _Publishing(
        rx.Observer[Any](on_next), producer, lambda m: m.payload, "nack"
    )
    failed = rs.ProducerAck("2", None, "send-error:8", "Failed to send message: Timeout")
    publishing.relayed([x, y, z], [(1, failed)])  # as the producer's receive thread does
    assert last.wait(WAIT)
    publishing.stop()
    producer.close()
    thread = f"rxstargate-publish-{producer.topic.topic}"
    assert seen == [(b"x", thread), (b"z", thread)]
    assert nacked_before_z == [b"y"] and settler.nacked == [b"y"]  # in order, on that thread


def test_a_to_message_that_raises_ends_the_stream_with_its_error_and_leaves_the_input(
    memory: Any, client: rs.Client, topic_name: str
) -> None:
    """As a selector's exception does in ``ops.map``; ``on_failure`` is for refused outputs."""
    source, out = client.topic(topic_name), topic_name + "-out"
    source.producer().send(b"a")
    boom = ValueError("cannot build the output")

    def to_message(item: Any) -> bytes:
        raise boom

    errors: list[Exception] = []
    ended = threading.Event()
    producer = client.topic(out).producer()
    source.observe("bridge", start="earliest").pipe(
        rso.publish(producer, to_message=to_message)
    ).subscribe(rs.acknowledger(on_error=lambda e: (errors.append(e), ended.set())))
    assert ended.wait(WAIT)
    producer.close()
    assert errors == [boom]
    assert stored_payloads(client, out) == []
    assert memory.backlog(topic_name, "bridge") == 1  # the input is redelivered, not lost


def test_a_failed_output_goes_to_its_bridge_alone_not_to_client_errors_as_unseen(
    memory: Any, client: rs.Client, topic_name: str
) -> None:
    source, out = client.topic(topic_name), topic_name + "-out"
    source.producer().send(b"a")
    memory.fail_next_send(out)
    reported: list[rs.StargateError] = []
    client.errors.subscribe(reported.append)
    ended = threading.Event()
    errors: list[Exception] = []
    producer = client.topic(out).producer()
    source.observe("bridge", start="earliest").pipe(
        rso.publish(producer, on_failure="error")
    ).subscribe(on_error=lambda e: (errors.append(e), ended.set()), on_completed=ended.set)
    assert ended.wait(WAIT)
    producer.close()
    assert len(errors) == 1 and isinstance(errors[0], rs.SendError)
    assert not [e for e in reported if "no acks observer saw it" in str(e)]
