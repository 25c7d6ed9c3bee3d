"""Many subscriptions of one topic on one client each read a live burst to the end.

Each socket's broker consumer shares one broker connection with the others. pulsar-lite then
now and then stops dispatching to some of them until the next flow command, published message
or consumer joining or leaving (docs/local-pulsar.md): with its write-buffer mark raised and the
gateway's nudges taken out, 100 Shared subscriptions reading a burst of 200 messages each had
10,045 of 20,100 after 180 s.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

import rxstargate as rs

pytestmark = pytest.mark.integration

SUBSCRIPTIONS = 100
MESSAGES = 200
WAIT_SECONDS = 30.0  # with the gateway's nudges it takes a few seconds; without, forever


class _Counter:
    """What each subscription received, in order; wakes the test once all have everything."""

    def __init__(self, subscriptions: int, expected: int) -> None:
        self.received: list[list[bytes]] = [[] for _ in range(subscriptions)]
        self._expected = expected
        self._complete = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def observer(self, index: int) -> Any:
        mine = self.received[index]

        def on_next(message: rs.Message[Any]) -> None:
            message.ack()
            mine.append(message.payload)
            if len(mine) == self._expected:
                with self._lock:
                    self._complete += 1
                    if self._complete == len(self.received):
                        self.done.set()

        return on_next


@pytest.mark.timeout(60)  # 100 subscriptions open, each past its first message, then read
def test_many_shared_subscriptions_on_one_client_each_read_a_live_burst_to_the_end(
    pulsar: Any, topic_name: str
) -> None:
    payloads = [i.to_bytes(4, "big") * 25 for i in range(MESSAGES)]
    counter = _Counter(SUBSCRIPTIONS, MESSAGES + 1)
    with rs.Client(pulsar.ws_url) as client:
        topic = client.topic(topic_name)
        with topic.producer() as producer:
            producer.send(b"open")  # each subscription's first message says it is open
            subscriptions = [
                topic.observe(f"s{index}", subscription_type="Shared", start="earliest").subscribe(
                    counter.observer(index)
                )
                for index in range(SUBSCRIPTIONS)
            ]
            try:
                for payload in payloads:
                    producer.send_then(payload, lambda ack: None)
                producer.flush(timeout=WAIT_SECONDS)
                counter.done.wait(WAIT_SECONDS)
            finally:
                for subscription in subscriptions:
                    subscription.dispose()
    short = {i: len(got) for i, got in enumerate(counter.received) if len(got) != MESSAGES + 1}
    assert short == {}, f"subscriptions that did not read {MESSAGES + 1} messages: {short}"
    assert all(got == [b"open", *payloads] for got in counter.received)
