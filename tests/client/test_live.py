"""topic.live(): an updating view that closes its socket on stop, on re-run and on interrupt."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest
import reactivex as rx

import rxstargate as rs

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_leaked_threads")]

WAIT = 20.0


def wait_until(predicate: Any) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_a_live_view_shows_the_last_messages_and_the_rate_and_stops(
    client: rs.Client, topic_name: str
) -> None:
    topic = client.topic(topic_name)
    view = topic.live(rows=5, interval=0.1, start="earliest")
    rx.from_iterable([f"<m{i}>".encode() for i in range(20)]).subscribe(topic.producer())
    wait_until(lambda: view.count == 20 and len(view.rates) >= 3)
    html = view.html()
    view.stop()
    assert "20 messages" in html
    assert "&lt;m19&gt;" in html and "&lt;m14&gt;" not in html  # the last five, escaped
    assert "data:image/png;base64," in html  # the rate plot
    assert not view.running
    assert client.streams == []


def test_a_new_view_of_the_same_topic_replaces_the_old_one(
    client: rs.Client, topic_name: str
) -> None:
    topic = client.topic(topic_name)
    first = topic.live(interval=0.1)
    second = topic.live(interval=0.1)  # as when its cell is run again
    assert not first.running and second.running
    assert [s.kind for s in client.streams] == ["reader"]
    second.stop()


def test_interrupting_the_kernel_stops_live_views(client: rs.Client, topic_name: str) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip(
            "Python delivers SIGINT to the main thread only, and pytest runs this elsewhere"
        )
    view = client.topic(topic_name).live(interval=0.1)
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # the signal arrives here
    assert not view.running
    assert client.streams == []
