"""Print pip constraints that pin each dependency to the floor pyproject.toml allows.

    python3 .ci/floors.py [EXTRA ...] > floors.txt
    pip install -c floors.txt '.[EXTRA]'

Every runtime dependency, and every dependency of the extras named, must have a `>=` floor; each
becomes `name==floor`, so a CI install with these constraints gets exactly the lowest versions
that pyproject.toml claims to support. Only the standard library is used (Python 3.11+).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")
_FLOOR = re.compile(r">=\s*([^,;\s]+)")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def floors(extras: list[str]) -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"no such extra in pyproject.toml: {', '.join(unknown)}")
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += optional[extra]
    own_name = _normalise(project["name"])
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement)
        if not match:
            raise SystemExit(f"cannot read requirement: {requirement!r}")
        name, _, spec = match.groups()
        if _normalise(name) == own_name:
            continue  # an extra that pulls in other extras of this project
        floor = _FLOOR.search(spec.split(";", 1)[0])
        if not floor:
            raise SystemExit(f"{requirement!r} has no '>=' floor to test")
        pin = f"{name}=={floor.group(1)}"
        if pins.setdefault(_normalise(name), pin) != pin:
            raise SystemExit(f"{name} has two different floors in pyproject.toml")
    return sorted(pins.values(), key=str.lower)


if __name__ == "__main__":
    print("\n".join(floors(sys.argv[1:])))
