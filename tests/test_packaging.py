"""Release packaging: the version is written once, and the changelog starts at it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

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
