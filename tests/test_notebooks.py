"""The notebooks run top to bottom against local Pulsar (or RXSTARGATE_WS_URL), are committed
without outputs, and leave nothing of rxstargate's running."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))

# Run after a notebook's own cells, in its kernel: every client closed, every pipeline stopped.
NOTHING_LEFT_RUNNING = """
import threading as _threading
import time as _time

_deadline = _time.monotonic() + 5
while _left := sorted(t.name for t in _threading.enumerate() if t.name.startswith("rxstargate")):
    assert _time.monotonic() < _deadline, f"the notebook left threads running: {_left}"
    _time.sleep(0.05)
"""


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, (
        f"cells {dirty} of {path.name} carry outputs or execution counts: clear them before"
        " committing (Jupyter's Edit > Clear Outputs of All Cells, or"
        f" `jupyter nbconvert --clear-output --inplace notebooks/{path.name}`)"
    )
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert "widgets" not in raw.get("metadata", {}), "widget state is an output too"


def _each_code_cell_twice(notebook: Any) -> Any:
    """The notebook with every code cell run again right after itself, as a user re-runs one."""
    cells = []
    for cell in notebook.cells:
        cells.append(cell)
        if cell.cell_type == "code":
            cells.append(nbformat.v4.new_code_cell(cell.source))
    notebook.cells = cells
    return notebook


def _execute(notebook: Any, cwd: Path) -> list[Any]:
    """Run the notebook in a fresh kernel; the error outputs (a failing cell raises)."""
    NotebookClient(notebook, timeout=60, kernel_name="python3").execute(cwd=str(cwd))
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]


@pytest.mark.integration
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_and_each_cell_can_run_again(
    path: Path, pulsar: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("RXSTARGATE_WS_URL", pulsar.ws_url)
    notebook = _each_code_cell_twice(nbformat.read(path, as_version=4))
    notebook.cells.append(nbformat.v4.new_code_cell(NOTHING_LEFT_RUNNING))
    errors = _execute(notebook, path.parent)
    assert not errors


LIVE_CELLS = [
    """
import os, time, uuid
import rxstargate as rs
client = rs.Client(os.environ["RXSTARGATE_WS_URL"])
topic = client.topic(f"live-once-{uuid.uuid4().hex[:8]}")
""",
    # The view as the last expression of the cell that made it.
    """
view = topic.live(interval=0.1, start="earliest")
topic.producer().send(b"one")
deadline = time.monotonic() + 20
while view.count < 1 and time.monotonic() < deadline:
    time.sleep(0.02)
view.stop()
view
""",
    "(running := topic.live(interval=0.1))",
    "view",  # shown again in a later cell: there it is one more output
    """
running.stop()
client.close()
""",
]


@pytest.mark.integration
def test_a_live_view_shows_once_as_the_last_expression_of_its_cell(
    pulsar: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("RXSTARGATE_WS_URL", pulsar.ws_url)
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source.strip()) for source in LIVE_CELLS]
    )
    notebook.cells.append(nbformat.v4.new_code_cell(NOTHING_LEFT_RUNNING))
    assert not _execute(notebook, tmp_path)
    shown = [
        [
            output["data"]["text/html"]
            for output in cell.outputs
            if "text/html" in output.get("data", {})
        ]
        for cell in notebook.cells[1:4]
    ]
    assert [len(outputs) for outputs in shown] == [1, 1, 1]
    assert "1 message in" in shown[0][0] and "(stopped)" in shown[0][0]  # its final state
    assert "(stopped)" in shown[2][0]
