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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, pulsar: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("RXSTARGATE_WS_URL", pulsar.ws_url)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(NOTHING_LEFT_RUNNING))
    NotebookClient(notebook, timeout=60, kernel_name="python3").execute(cwd=str(path.parent))
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
