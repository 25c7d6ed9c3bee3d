"""asyncio: async for over a topic, leaving the loop closes the socket, Rx onto an event loop.

On MemoryPulsar; a consumer acked from a coroutine also against the session's Pulsar.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import reactivex as rx
from reactivex import operators as ops
from reactivex.scheduler.eventloop import AsyncIOThreadSafeScheduler

import rxstargate as rs
from rxstargate.aio import iterate
from tests.conftest import Backend

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

WAIT = 10.0


def test_async_for_reads_a_topic_and_leaving_the_loop_closes_the_socket(
    client: rs.Client, topic_name: str
) -> None:
    topic = client.topic(topic_name)
    rx.from_iterable([str(i).encode() for i in range(1500)]).subscribe(topic.producer())

    async def main() -> list[bytes]:
        payloads: list[bytes] = []
        async for message in topic.messages(start="earliest", max_in_flight=20):
            payloads.append(message.payload)
            if len(payloads) == 1200:
                break
        for _ in range(1000):  # the generator is finalized by the loop soon after the break
            if not client.streams:
                break
            await asyncio.sleep(0.005)
        return payloads

    payloads = asyncio.run(asyncio.wait_for(main(), WAIT))
    assert payloads == [str(i).encode() for i in range(1200)]
    assert client.streams == []


def test_a_consumer_acked_from_a_coroutine(backend: Backend, topic_name: str) -> None:
    topic = backend.client().topic(topic_name)
    producer = topic.producer()

    async def main() -> list[bytes]:
        for i in range(5):
            await producer.asend(str(i).encode())
        got: list[bytes] = []
        async for message in topic.messages("sub", start="earliest", max_in_flight=2):
            message.ack()
            got.append(message.payload)
            if len(got) == 5:
                break
        return got

    assert asyncio.run(asyncio.wait_for(main(), WAIT)) == [b"0", b"1", b"2", b"3", b"4"]


def test_an_error_ends_the_async_for_with_that_error() -> None:
    async def main() -> None:
        async for _ in iterate(rx.throw(ValueError("boom"))):
            pass

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(main())


def test_an_rx_stream_moved_onto_the_event_loop_runs_every_callback_there(
    client: rs.Client, topic_name: str
) -> None:
    """The documented way to handle messages on the loop: observe_on a thread-safe scheduler."""
    topic = client.topic(topic_name)
    rx.from_iterable([str(i).encode() for i in range(50)]).subscribe(topic.producer())

    async def main() -> tuple[set[int], list[bytes]]:
        loop = asyncio.get_running_loop()
        threads: set[int] = set()
        payloads: list[bytes] = []
        done = asyncio.Event()

        def on_next(message: rs.Message[Any]) -> None:
            threads.add(threading.get_ident())
            payloads.append(message.payload)

        subscription = (
            topic.observe(start="earliest")
            .pipe(ops.observe_on(AsyncIOThreadSafeScheduler(loop)), ops.take(50))
            .subscribe(on_next, on_completed=done.set)
        )
        await asyncio.wait_for(done.wait(), WAIT)
        subscription.dispose()
        return threads, payloads

    threads, payloads = asyncio.run(main())
    assert threads == {threading.get_ident()}  # asyncio.run's loop runs on this thread
    assert payloads == [str(i).encode() for i in range(50)]


def test_aclosing_closes_the_socket_right_at_a_break(client: rs.Client, topic_name: str) -> None:
    import contextlib

    topic = client.topic(topic_name)
    topic.producer().send(b"one")

    async def main() -> int:
        kept = topic.messages(start="earliest")  # a reference outlives the loop
        async with contextlib.aclosing(kept) as messages:
            async for _ in messages:
                break
        return len(client.streams)

    assert asyncio.run(asyncio.wait_for(main(), WAIT)) == 1  # only the producer is left
