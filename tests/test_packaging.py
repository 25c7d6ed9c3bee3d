"""Release packaging: the version is written once, the changelog starts at it, and importing
the package (or starting the command line) stays cheap."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import rxstargate as rs

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_version_is_written_in_one_place_that_the_metadata_is_built_from() -> None:
    assert "version" not in PROJECT["project"]
    assert PROJECT["project"]["dynamic"] == ["version"]
    source = ROOT / PROJECT["tool"]["hatch"]["version"]["path"]
    assert re.findall(r'^__version__ = "([^"]+)"$', source.read_text(), re.M) == [rs.__version__]


def test_the_changelog_starts_at_the_current_version() -> None:
    headings = re.findall(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings[0] == rs.__version__


def test_the_license_named_in_the_metadata_is_shipped() -> None:
    assert PROJECT["project"]["license"] == "Apache-2.0"
    for name in PROJECT["project"]["license-files"]:
        assert "Apache License" in (ROOT / name).read_text()


# What the command line's parser and `import rxstargate` must not load: the client's machinery.
_MACHINERY = (
    "asyncio",
    "marshmallow",
    "reactivex",
    "rxstargate.client",
    "rxstargate.notebook",
    "rxstargate.service._app",
    "websocket",
)

_FRESH_IMPORT = f"""
import json, sys
import rxstargate as rs
from rxstargate.cli._arguments import parser
parser().format_help()
loaded = sorted(name for name in {_MACHINERY!r} if name in sys.modules)
ack = rs.ProducerAck("1", rs.MessageId.from_parts(1, 2))
print(json.dumps({{"loaded": loaded, "html": ack._repr_html_()}}))
"""


def test_the_package_and_the_command_lines_parser_start_without_the_client_machinery() -> None:
    # A fresh interpreter: this one has imported everything already.
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_IMPORT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["loaded"] == []
    # The notebook views are imported by the first value a notebook shows, not by the package.
    assert seen["html"].startswith("<table>") and "CAEQAg==" in seen["html"]


def test_every_public_name_is_its_modules_own_and_listed_by_dir() -> None:
    for name in rs.__all__:
        value = getattr(rs, name)
        if value.__module__.startswith("rxstargate"):  # not a type alias such as Connector
            assert getattr(sys.modules[value.__module__], name) is value, name
    assert set(rs.__all__) <= set(dir(rs))
    assert {"operators", "service", "notebook"} <= set(dir(rs))
    assert rs.operators.Retry is importlib.import_module("rxstargate.operators").Retry
    with pytest.raises(AttributeError, match="no attribute 'Clinet'"):
        _ = rs.Clinet  # type: ignore[attr-defined]
