"""``topic.live()``: a notebook view that tails a topic into an updating table and count plot.

The view reads in the background and redraws every ``interval`` seconds: the last messages as
a table and the messages seen per interval as bars (matplotlib, from the ``notebook`` extra;
without it the counts are shown as text). It closes its socket when stopped, when a new view
of the same topic replaces it (re-running its cell), and when the kernel is interrupted.
"""

from __future__ import annotations

import collections
import html
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from rxstargate.models import Message
from rxstargate.notebook._counts import Interval, counts_plot
from rxstargate.notebook._slot import NotebookSlot
from rxstargate.notebook._tables import messages_html

__all__ = ["LiveView"]

#: Intervals kept (``rates`` and ``intervals``): ten minutes at the default interval.
_KEPT = 600

_views: dict[str, LiveView] = {}
_views_lock = threading.Lock()
_previous_sigint: Any = None


def _stop_all_on_interrupt() -> None:
    """Chain a SIGINT handler that stops every live view before the kernel's own runs."""
    global _previous_sigint
    if _previous_sigint is not None or threading.current_thread() is not threading.main_thread():
        return
    _previous_sigint = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        with _views_lock:
            views = list(_views.values())
        for view in views:
            view.stop()
        previous = _previous_sigint
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)


class LiveView:
    """A running live view; create it with ``topic.live()``.

    In a notebook it shows itself in the cell that made it and updates in place; as that
    cell's last expression it is not shown a second time.

    Attributes:
        messages: the last ``rows`` messages seen.
        intervals: (start, end, messages seen) per redraw, in seconds since the view started:
            what the bars show.
        rates: (seconds since start, messages per second) per redraw.
        count: messages seen in all.

    Example:
        >>> view = topic.live(rows=10)  # doctest: +SKIP
        >>> view.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        key: str,
        subscribe: Callable[[Callable[[Message[Any]], None]], Any],
        *,
        rows: int = 20,
        interval: float = 1.0,
        show: Callable[[str], Any] | None = None,
    ) -> None:
        self.messages: collections.deque[Message[Any]] = collections.deque(maxlen=rows)
        self.intervals: list[Interval] = []
        self.rates: list[tuple[float, float]] = []
        self.count = 0
        self._key = key
        self._interval = interval
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._started = self._last_tick = self._ended = time.monotonic()
        self._last_count = 0
        self._slot = NotebookSlot.open("<p>starting…</p>") if show is None else None
        self._show = show or (self._slot.update if self._slot is not None else _nowhere)
        with _views_lock:
            previous = _views.pop(key, None)
            _views[key] = self
        if previous is not None:
            previous.stop()  # its cell was re-run
        _stop_all_on_interrupt()
        self._subscription = subscribe(self._on_message)
        self._thread = threading.Thread(target=self._redraw_loop, name="rxstargate-live")
        self._thread.daemon = True
        self._thread.start()

    @property
    def running(self) -> bool:
        """True until stopped."""
        return not self._stopped.is_set()

    def _on_message(self, message: Message[Any]) -> None:
        with self._lock:
            self.messages.append(message)
            self.count += 1

    def _redraw_loop(self) -> None:
        while not self._stopped.wait(self._interval):
            self._tick(time.monotonic())

    def _tick(self, now: float) -> None:
        """Count the interval that ends ``now`` and redraw."""
        with self._lock:
            count = self.count
        start, end = self._last_tick - self._started, now - self._started
        seen = count - self._last_count
        self.intervals.append((start, end, seen))
        self.rates.append((end, seen / (end - start) if end > start else 0.0))
        del self.intervals[:-_KEPT], self.rates[:-_KEPT]
        self._last_tick, self._last_count = now, count
        self._show(self.html())

    def html(self, rows: list[Message[Any]] | None = None) -> str:
        """The view as HTML: how many messages, a bar per interval, and the last messages."""
        with self._lock:
            count = self.count
            if rows is None:
                rows = list(self.messages)
        seconds = (self._ended if self._stopped.is_set() else time.monotonic()) - self._started
        header = (
            f"<b>{html.escape(self._key)}</b>: {count} message{'' if count == 1 else 's'}"
            f" in {seconds:.1f} s"
        )
        if self._stopped.is_set():
            header += " (stopped)"
        elif self.intervals:
            header += f", {self.intervals[-1][2]} in the last {self._interval:g} s"
        plot = counts_plot(self.intervals)
        return f"<p>{header}</p>{plot}{messages_html(reversed(rows))}"

    def stop(self) -> None:
        """Close the socket, stop redrawing and draw what was seen last. Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._subscription.dispose()
        with _views_lock:
            if _views.get(self._key) is self:
                del _views[self._key]
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._ended = time.monotonic()
        self._tick(self._ended)  # the interval cut short: every message is in a bar

    def _ipython_display_(self) -> None:
        """Shown as a cell's value: in the cell that made it, it shows there already."""
        if self._slot is not None:
            self._slot.show_in_current_cell(self.html())
            return
        from IPython import display

        show: Any = display.display
        page: Any = display.HTML
        show(page(self.html()))

    def _repr_html_(self) -> str:
        return self.html()


def _nowhere(html: str) -> None:
    """Where a view draws outside a notebook: its attributes are there to read."""
