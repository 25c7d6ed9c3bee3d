"""The notebooks run top to bottom against local Pulsar (or RXSTARGATE_WS_URL), are committed
without outputs, and leave nothing of rxstargate's running.

Running a notebook is mostly waiting (its cells sleep, pace producers and wait for silence), so
the notebooks of this module run at once, each in a child process with its own kernel, started
when the first of their tests needs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

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


#: Runs a notebook in a fresh kernel (argv: notebook in, notebook out, working directory); a
#: failing cell raises, after the notebook with its outputs so far is written.
RUNNER = """
import sys

import nbformat
from nbclient import NotebookClient

source, target, cwd = sys.argv[1:4]
notebook = nbformat.read(source, as_version=4)
try:
    NotebookClient(notebook, timeout=60, kernel_name="python3").execute(cwd=cwd)
finally:
    nbformat.write(notebook, target)
"""


class NotebookRun:
    """A notebook running in a child process."""

    def __init__(self, notebook: Any, cwd: Path, folder: Path, name: str, ws_url: str) -> None:
        self.source, self.target = folder / f"{name}.ipynb", folder / f"{name}.out.ipynb"
        nbformat.write(notebook, self.source)
        self._log = (folder / f"{name}.log").open("w+", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(self.source), str(self.target), str(cwd)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RXSTARGATE_WS_URL": ws_url},
        )

    def result(self) -> tuple[Any, list[Any]]:
        """The executed notebook and its error outputs; fails if a cell raised."""
        self.process.wait(90)
        self._log.seek(0)
        assert self.process.returncode == 0, self._log.read()
        notebook = nbformat.read(self.target, as_version=4)
        errors = [
            output
            for cell in notebook.cells
            if cell.cell_type == "code"
            for output in cell.get("outputs", [])
            if output.get("output_type") == "error"
        ]
        return notebook, errors

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


@pytest.fixture(scope="module")
def notebook_runs(
    pulsar: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, NotebookRun]]:
    """Every notebook of this module, run at once, by name."""
    folder = tmp_path_factory.mktemp("notebooks")
    runs: dict[str, NotebookRun] = {}
    try:
        for path in NOTEBOOKS:
            notebook = _each_code_cell_twice(nbformat.read(path, as_version=4))
            notebook.cells.append(nbformat.v4.new_code_cell(NOTHING_LEFT_RUNNING))
            runs[path.stem] = NotebookRun(notebook, path.parent, folder, path.stem, pulsar.ws_url)
        live = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(source.strip()) for source in LIVE_CELLS]
        )
        live.cells.append(nbformat.v4.new_code_cell(NOTHING_LEFT_RUNNING))
        runs["live-view"] = NotebookRun(live, folder, folder, "live-view", pulsar.ws_url)
        yield runs
    finally:
        for run in runs.values():
            run.stop()


# Slow: the first of these tests waits for every notebook running at once (each runs every
# code cell twice, and its cells wait for real: 5 to 12 s together on an idle machine). The
# tests that share the notebooks' runs run on one worker when the suite runs on several.
@pytest.mark.integration
@pytest.mark.xdist_group("notebooks")
@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_and_each_cell_can_run_again(
    path: Path, notebook_runs: dict[str, NotebookRun]
) -> None:
    _, errors = notebook_runs[path.stem].result()
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
@pytest.mark.xdist_group("notebooks")
@pytest.mark.timeout(120)  # waits for its notebook, which runs with the others (see above)
def test_a_live_view_shows_once_as_the_last_expression_of_its_cell(
    notebook_runs: dict[str, NotebookRun],
) -> None:
    notebook, errors = notebook_runs["live-view"].result()
    assert not errors
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
