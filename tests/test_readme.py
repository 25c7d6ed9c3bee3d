"""The README's examples run as written: the 30-second one against local Pulsar, the testing one
with pytest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _first_example(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {heading}", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, f"the README lost the example of {heading!r}"
    return match.group(1)


def _thirty_second_example() -> str:
    return _first_example("In 30 seconds")


@pytest.mark.integration
def test_thirty_second_example_prints_what_it_promises(pulsar: Any) -> None:
    code = _thirty_second_example()
    assert "ws://127.0.0.1:8080" in code
    code = code.replace("ws://127.0.0.1:8080", pulsar.ws_url)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("stored ") for line in lines) == 3
    assert lines[-1] == "['apple', 'banana', 'cherry']"


@pytest.mark.usefixtures("no_leaked_threads")
def test_the_testing_example_passes_under_pytest(tmp_path: Path) -> None:
    code = _first_example("Testing your pipelines")
    assert "MemoryPulsar" in code and "TestScheduler" in code
    (tmp_path / "test_billing.py").write_text(code, encoding="utf-8")
    # A child pytest, as a user runs the example: its start-up takes most of this test's 2-4 s.
    root = str(README.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider", "."],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
