"""How the demo shows itself: progress bars while it runs, a summary table at the end (rich)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rxstargate.cli._demo_tally import DemoSummary

__all__ = ["DemoProgress", "print_summary"]


class DemoProgress:
    """Two progress bars, produced and processed; shows nothing when ``show`` is false."""

    def __init__(self, messages: int, *, show: bool) -> None:
        self._messages = messages
        self._progress: Any = None
        if not show:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        self._sent = self._progress.add_task("produced ", total=messages)
        self._handled = self._progress.add_task("processed", total=messages)

    def update(self, stored: int, processed: int) -> None:
        """Move the bars to ``stored`` produced and ``processed`` handled."""
        if self._progress is not None:
            self._progress.update(self._sent, completed=stored)
            self._progress.update(self._handled, completed=processed)

    def __enter__(self) -> DemoProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()


def _ms(percentiles: tuple[float, float, float]) -> str:
    return " / ".join(f"{value:,.1f}" for value in percentiles) + " ms"


def print_summary(summary: DemoSummary) -> None:
    """Print the summary table, with what bounded the pipeline and where the latency went."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title="rxstargate demo: orders through a key-ordered pipeline",
        caption=(
            "The producer runs ahead of the handlers: the broker keeps the backlog, and the"
            f" pipeline takes at most {summary.max_in_flight:,} at a time. So the latency is"
            " mostly waiting, not handling."
        ),
        caption_justify="left",
    )
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("messages", f"{summary.messages:,}")
    table.add_row("throughput", f"{summary.throughput:,.0f} msg/s")
    table.add_row("concurrency (handler calls at once)", str(summary.concurrency))
    table.add_row(
        "peak in flight", f"{summary.peak_in_flight:,} of {summary.max_in_flight:,} (max_in_flight)"
    )
    table.add_row("latency p50 / p95 / p99, end to end", _ms(summary.latency_ms))
    table.add_row("  waiting in the backlog", _ms(summary.waiting_ms))
    table.add_row("  handling", _ms(summary.handling_ms))
    table.add_row("redeliveries", str(summary.redeliveries))
    table.add_row("out of order per customer", str(summary.out_of_order))
    Console().print(table)
