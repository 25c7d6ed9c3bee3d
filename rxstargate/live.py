"""``topic.live()``: a notebook view that tails a topic into an updating table and rate plot.

The view reads in the background and redraws every ``interval`` seconds: the last messages as
a table and the message rate over time as a small plot (matplotlib, from the ``notebook``
extra; without it the rate is shown as text). It closes its socket when stopped, when a new
view of the same topic replaces it (re-running its cell), and when the kernel is interrupted.
"""

from __future__ import annotations

import base64
import collections
import io
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from rxstargate.display import messages_html
from rxstargate.models import Message

__all__ = ["LiveView"]

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

    Attributes:
        messages: the last ``rows`` messages seen.
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
        self.rates: list[tuple[float, float]] = []
        self.count = 0
        self._key = key
        self._interval = interval
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._show = show or _notebook_display()
        self._started = time.monotonic()
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
        last_count, last_time = 0, self._started
        while not self._stopped.wait(self._interval):
            now = time.monotonic()
            with self._lock:
                count = self.count
                rows = list(self.messages)
            self.rates.append((now - self._started, (count - last_count) / (now - last_time)))
            last_count, last_time = count, now
            self._show(self.html(rows))

    def html(self, rows: list[Message[Any]] | None = None) -> str:
        """The view as HTML: a rate plot (or line) and the last messages."""
        if rows is None:
            with self._lock:
                rows = list(self.messages)
        rate = self.rates[-1][1] if self.rates else 0.0
        header = f"<p><b>{self._key}</b>: {self.count} messages, {rate:.1f} msg/s</p>"
        return header + _rate_plot(self.rates) + messages_html(reversed(rows))

    def stop(self) -> None:
        """Close the socket and stop redrawing. Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._subscription.dispose()
        with _views_lock:
            if _views.get(self._key) is self:
                del _views[self._key]
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _repr_html_(self) -> str:
        return self.html()


def _rate_plot(rates: list[tuple[float, float]]) -> str:
    if len(rates) < 2:
        return ""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ""
    figure, axes = plt.subplots(figsize=(5, 1.6))
    axes.plot([t for t, _ in rates], [r for _, r in rates])
    axes.set_xlabel("seconds")
    axes.set_ylabel("msg/s")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}"/>'


def _notebook_display() -> Callable[[str], Any]:
    """An updatable display slot in the notebook (IPython), or a no-op outside one."""
    try:
        from IPython import display as ipython_display
        from IPython import get_ipython
    except ImportError:
        return lambda html: None
    if get_ipython() is None:  # a plain interpreter: the view's attributes are there to read
        return lambda html: None
    page: Any = ipython_display.HTML
    show: Any = ipython_display.display
    handle: Any = show(page("<p>starting…</p>"), display_id=True)
    if handle is None:
        return lambda html: None
    return lambda html: handle.update(page(html))
