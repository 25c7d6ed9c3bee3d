"""Callbacks on the broker client's threads keep one Python thread state per thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from rxstargate.local._gateway._threadstate import keep_thread_state

pytestmark = pytest.mark.integration

SENDS = 20


def test_send_callbacks_on_a_broker_client_thread_share_one_thread_state(
    broker_client: Any, topic_name: str
) -> None:
    # A threading.local lives in the thread state: a state made for each call starts empty.
    per_state = threading.local()
    calls: list[tuple[int, bool]] = []  # (native thread id, whether its state was new)
    done = threading.Event()

    def on_sent(result: Any, message_id: Any) -> None:
        keep_thread_state()
        calls.append((threading.get_native_id(), not getattr(per_state, "seen", False)))
        per_state.seen = True
        if len(calls) == SENDS:
            done.set()

    producer = broker_client.create_producer(topic_name, batching_enabled=False)
    for _ in range(SENDS):
        producer.send_async(b"x", on_sent)
    assert done.wait(30)
    producer.close()
    threads = {ident for ident, _ in calls}
    assert threading.get_native_id() not in threads  # the broker client's own threads
    assert sum(new for _, new in calls) == len(threads)


def test_keeping_the_state_of_a_python_thread_changes_nothing_for_it() -> None:
    per_state = threading.local()
    per_state.value = "kept"
    seen: list[str] = []

    def run() -> None:
        keep_thread_state()
        keep_thread_state()
        per_state.value = "other"
        seen.append(per_state.value)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(10)
    assert not worker.is_alive()
    assert seen == ["other"]
    assert per_state.value == "kept"
