"""topic.live(): an updating view that closes its socket on stop, on re-run and on interrupt
(on MemoryPulsar)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from typing import Any

import pytest
import reactivex as rx
from reactivex.disposable import Disposable

import rxstargate as rs
from rxstargate.notebook import LiveView
from rxstargate.notebook._counts import counts_figure, counts_plot

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

WAIT = 10.0


def wait_until(predicate: Any) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def message(payload: bytes) -> rs.Message[Any]:
    return rs.Message(
        topic=rs.TopicName.parse("t"), payload=payload, message_id=rs.MessageId.from_parts(1, 2)
    )


class _Feed:
    """A live view's source that the test drives: messages in, and the view's redraws."""

    def __init__(self) -> None:
        self.deliver: Any = None
        self.shown: list[str] = []

    def subscribe(self, on_message: Any) -> Disposable:
        self.deliver = on_message
        return Disposable()


#: The view's own redraws never come during these tests: the tests drive them.
INTERVAL = 60.0


def _counted(feed: _Feed) -> LiveView:
    """A view that saw six messages at once (a backlog), then one, then none."""
    view = LiveView("orders", feed.subscribe, interval=INTERVAL, show=feed.shown.append)
    for payload in (b"a", b"b", b"c", b"d", b"e", b"f"):
        feed.deliver(message(payload))
    view._tick(view._started + INTERVAL)
    assert counts_plot(view.intervals) == ""  # no plot from a single interval
    feed.deliver(message(b"kiwi"))
    view._tick(view._started + 2 * INTERVAL)
    view._tick(view._started + 3 * INTERVAL)
    return view


def test_with_few_messages_the_view_counts_them_per_interval_and_says_what_it_counted() -> None:
    feed = _Feed()
    view = _counted(feed)
    assert [count for _, _, count in view.intervals] == [6, 1, 0]
    assert view.intervals[-1] == pytest.approx((2 * INTERVAL, 3 * INTERVAL, 0))
    assert re.search(r"orders</b>: 7 messages in [\d.]+ s, 0 in the last 60 s", feed.shown[-1])
    view.stop()
    assert re.search(r"7 messages in [\d.]+ s \(stopped\)", feed.shown[-1])  # as seen last
    assert sum(count for _, _, count in view.intervals) == view.count  # each in a bar


def test_the_counts_are_drawn_as_a_bar_per_interval() -> None:
    pytest.importorskip("matplotlib", reason="the bars are drawn with matplotlib (notebook extra)")
    feed = _Feed()
    view = _counted(feed)
    view.stop()
    assert "data:image/png;base64," in feed.shown[-1]
    (axes,) = counts_figure(view.intervals[:3]).axes
    assert [bar.get_height() for bar in axes.patches] == [6, 1, 0]  # bars, as counted
    assert len(axes.lines) == 0  # no line drawn between rates that no message made


def test_a_live_view_shows_the_last_messages_and_the_rate_and_stops(
    client: rs.Client, topic_name: str
) -> None:
    pytest.importorskip("matplotlib", reason="the rate is drawn with matplotlib (notebook extra)")
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
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the signal arrives here, however busy the machine
            time.sleep(0.01)
    assert not view.running
    assert client.streams == []
