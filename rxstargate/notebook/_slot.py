"""Where a live view draws itself in a notebook: one display, updated in place."""

from __future__ import annotations

from typing import Any

__all__ = ["NotebookSlot"]


def _shell() -> Any:
    """The running IPython shell, or None (a plain interpreter, or no IPython installed)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


class NotebookSlot:
    """An output of the notebook that a view shows itself in and then updates in place.

    The view is shown once in the cell that made it. Shown again as a cell's value (the last
    expression of a cell), it is not drawn twice in that cell; in a later cell it gets a
    second output that shows the same updates.
    """

    def __init__(self, shell: Any, html: str) -> None:
        from IPython import display

        page: Any = display.HTML
        show: Any = display.display
        self._shell = shell
        self._page = page
        self._display = show
        self._cell = shell.execution_count
        self._handle: Any = show(page(html), display_id=True)

    @classmethod
    def open(cls, html: str) -> NotebookSlot | None:
        """Show ``html`` in the running notebook's current cell; None outside a notebook."""
        shell = _shell()
        return cls(shell, html) if shell is not None else None

    def update(self, html: str) -> None:
        """Draw ``html`` in place of what every output of this slot shows."""
        if self._handle is not None:
            self._handle.update(self._page(html))

    def show_in_current_cell(self, html: str) -> None:
        """Show the slot in the cell that is running, unless it shows there already."""
        if self._handle is None:
            return
        if self._shell.execution_count == self._cell:
            self.update(html)
            return
        self._cell = self._shell.execution_count
        self._display(self._page(html), display_id=self._handle.display_id)
