"""A live view's message counts per interval, drawn as bars: true with few messages too."""

from __future__ import annotations

import base64
import io
from typing import Any

__all__ = ["Interval", "counts_figure", "counts_plot"]

#: (start, end, messages): seconds since the view started, and the messages seen between.
Interval = tuple[float, float, int]

#: Intervals drawn at most: the most recent ones.
_DRAWN = 120


def counts_figure(intervals: list[Interval]) -> Any:
    """A bar per interval, as tall as the messages seen in it; None without matplotlib.

    Bars rather than a line: with a handful of messages a line between two rates draws a
    slope that no message made; a bar says only what was counted when.
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return None
    shown = intervals[-_DRAWN:]
    figure = Figure(figsize=(5, 1.6))
    axes = figure.subplots()
    axes.bar(
        [start for start, _, _ in shown],
        [count for _, _, count in shown],
        width=[end - start for start, end, _ in shown],
        align="edge",
    )
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("seconds")
    axes.set_ylabel("messages")  # in the bar's own interval: a slow redraw makes it wider
    figure.tight_layout()
    return figure


def counts_plot(intervals: list[Interval]) -> str:
    """The bars of :func:`counts_figure` as an HTML image; empty before two intervals."""
    if len(intervals) < 2:
        return ""
    figure = counts_figure(intervals)
    if figure is None:
        return ""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}"/>'
