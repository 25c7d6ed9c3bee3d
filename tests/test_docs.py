"""The documentation site: its examples run as written, and its API reference covers the API.

Every ```python block in ``docs/`` is a program that runs as it stands, unless the line before
it says why not (``<!-- not run: signatures only -->``). A block that names local Pulsar's
default URL (``ws://127.0.0.1:8080``) runs against a local Pulsar of its page's own (the blocks
of a page in order, as a reader would run them), or the endpoint in ``RXSTARGATE_WS_URL``; the
others need no broker. A block that defines tests (``def test_...``) runs under pytest, as a user
would run it, and each of its tests must pass. A block followed at once by a
```text title="Output"`` block must print exactly that.

The blocks that need no broker run in this process, each program in a namespace of its own as
``python -c`` would run it and each block of tests under a pytest of its own: starting a fresh
interpreter for each cost more than all they do. The others run in a fresh interpreter each.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
LOCAL_URL = "ws://127.0.0.1:8080"

#: Modules whose public names the API reference must document, each name by its own directive
#: (``::: rxstargate.Client``) or by one for its module (``::: rxstargate.operators``).
PUBLIC_MODULES = (
    "rxstargate",
    "rxstargate.operators",
    "rxstargate.aio",
    "rxstargate.local",
    "rxstargate.testing",
    "rxstargate.service",
)

_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.M | re.S
)
_NOT_RUN = re.compile(r"<!-- not run: (?P<why>[^>]*\S) -->\s*$")
_OUTPUT_INFO = 'text title="Output"'


@dataclass(frozen=True)
class Example:
    """One python block of a page."""

    page: Path
    line: int
    code: str
    output: str | None
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def needs_pulsar(self) -> bool:
        return LOCAL_URL in self.code or "LocalPulsar" in self.code

    @property
    def tests(self) -> int:
        """How many tests the block defines for pytest (0: it is a program)."""
        return len(re.findall(r"^def test_", self.code, re.M))


def _dedent(body: str, indent: str) -> str:
    return "".join(line.removeprefix(indent) for line in body.splitlines(keepends=True))


def examples(page: Path) -> list[Example]:
    """The python blocks of ``page``, each with the output block that follows it, if any."""
    text = page.read_text(encoding="utf-8")
    fences = list(_FENCE.finditer(text))
    found: list[Example] = []
    for index, fence in enumerate(fences):
        if fence.group("info").strip() != "python":
            continue
        before = text[: fence.start()].rstrip("\n").rsplit("\n", 1)[-1]
        not_run = _NOT_RUN.search(before)
        output = None
        after = fences[index + 1] if index + 1 < len(fences) else None
        if (
            after is not None
            and after.group("info").strip() == _OUTPUT_INFO
            and not text[fence.end() : after.start()].strip()
        ):
            output = _dedent(after.group("body"), after.group("indent"))
        found.append(
            Example(
                page=page,
                line=text.count("\n", 0, fence.start()) + 1,
                code=_dedent(fence.group("body"), fence.group("indent")),
                output=output,
                not_run=not_run.group("why") if not_run else None,
            )
        )
    return found


def _runnable(page: Path, *, needs_pulsar: bool) -> list[Example]:
    return [
        example
        for example in examples(page)
        if example.not_run is None and example.needs_pulsar == needs_pulsar
    ]


def _pages_with(*, needs_pulsar: bool) -> list[Path]:
    return [page for page in PAGES if _runnable(page, needs_pulsar=needs_pulsar)]


def _page_id(page: Path) -> str:
    return str(page.relative_to(DOCS))


def _run(example: Example, url: str | None, cwd: Path) -> None:
    code = example.code if url is None else example.code.replace(LOCAL_URL, url)
    if example.tests:
        _run_tests(example, code, cwd)
        return
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, f"{example.where} failed:\n{result.stderr}"
    if example.output is not None:
        assert result.stdout == example.output, f"{example.where} printed:\n{result.stdout}"


def _run_tests(example: Example, code: str, cwd: Path) -> None:
    """Run a block of tests with pytest, warnings as errors, as a user would run the example."""
    (cwd / f"test_example_{example.line}.py").write_text(code, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-W",
            "error",
            "-p",
            "no:cacheprovider",
            f"test_example_{example.line}.py",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=cwd,
        env=env,
    )
    assert result.returncode == 0, f"{example.where} failed:\n{result.stdout}{result.stderr}"
    passed = re.search(rf"(?<!\d){example.tests} passed", result.stdout)
    assert passed, f"{example.where}:\n{result.stdout}"


def _run_here(example: Example, cwd: Path) -> None:
    """Run a block that needs no broker in this process, from ``cwd``.

    A program runs as ``python -c`` runs it: in a namespace of its own named ``__main__``; what
    it prints is compared with its output block. A block of tests runs under pytest as in
    :func:`_run_tests`, on a pytest of its own in this process.
    """
    if example.tests:
        _run_tests_here(example, cwd)
        return
    printed = io.StringIO()
    try:
        with contextlib.chdir(cwd), contextlib.redirect_stdout(printed):
            exec(compile(example.code, example.where, "exec"), {"__name__": "__main__"})
    except SystemExit as exit_:
        assert exit_.code in (None, 0), f"{example.where} exited with {exit_.code!r}"
    except Exception:
        pytest.fail(f"{example.where} failed:\n{traceback.format_exc()}")
    if example.output is not None:
        assert printed.getvalue() == example.output, (
            f"{example.where} printed:\n{printed.getvalue()}"
        )


def _run_tests_here(example: Example, cwd: Path) -> None:
    """Run a block of tests with pytest in this process, warnings as errors."""
    name = f"test_example_{example.line}"
    (cwd / f"{name}.py").write_text(example.code, encoding="utf-8")
    printed, path = io.StringIO(), list(sys.path)
    try:
        with (
            contextlib.chdir(cwd),
            contextlib.redirect_stdout(printed),
            contextlib.redirect_stderr(printed),
        ):
            status = pytest.main(["-q", "-W", "error", "-p", "no:cacheprovider", f"{name}.py"])
    finally:  # pytest put the example's directory on the path and imported it as `name`
        sys.path[:] = path
        sys.modules.pop(name, None)
    stdout = printed.getvalue()
    assert status == 0, f"{example.where} failed:\n{stdout}"
    passed = re.search(rf"(?<!\d){example.tests} passed", stdout)
    assert passed, f"{example.where}:\n{stdout}"


@pytest.fixture
def page_pulsar() -> Iterator[str]:
    """A Pulsar for one page's examples: a fresh local Pulsar, or RXSTARGATE_WS_URL's."""
    url = os.environ.get("RXSTARGATE_WS_URL")
    if url:
        yield url
        return
    from rxstargate.local import LocalPulsar

    with LocalPulsar() as pulsar:
        yield pulsar.ws_url


def test_the_site_has_examples_of_both_kinds() -> None:
    assert _pages_with(needs_pulsar=False)
    assert _pages_with(needs_pulsar=True)


# testing.md's run pytest on a user's tests (about 6 s, over 20 s in a parallel run on two busy
# cores, when it ran in a fresh interpreter), so a page has 60 s before it counts as hung.
@pytest.mark.usefixtures("no_leaked_threads")
@pytest.mark.timeout(60)
@pytest.mark.parametrize("page", _pages_with(needs_pulsar=False), ids=_page_id)
def test_the_examples_that_need_no_broker_run_as_written(page: Path, tmp_path: Path) -> None:
    for example in _runnable(page, needs_pulsar=False):
        _run_here(example, tmp_path)


# Slow (2 to 5 s a page): each page starts a local Pulsar of its own, since its examples name
# fixed topics and subscriptions, and runs each example in a fresh interpreter. A page of eight
# examples takes about 20 s when the suite runs in parallel on two busy cores: 60 s before it
# counts as hung (each example's run has its own 90 s timeout too).
@pytest.mark.integration
@pytest.mark.timeout(60)
@pytest.mark.parametrize("page", _pages_with(needs_pulsar=True), ids=_page_id)
def test_the_examples_that_need_pulsar_run_as_written(
    page: Path, page_pulsar: str, tmp_path: Path
) -> None:
    for example in _runnable(page, needs_pulsar=True):
        _run(example, page_pulsar, tmp_path)


def test_an_output_block_follows_a_block_that_runs() -> None:
    for page in PAGES:
        for example in examples(page):
            assert example.output is None or example.not_run is None, example.where


def _resolve(path: str) -> object:
    """The object a directive names (``rxstargate.App``, ``rxstargate.service.AppMetrics``)."""
    module_name, _, attribute = path.rpartition(".")
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError:
        return getattr(importlib.import_module(module_name), attribute)


def test_the_api_reference_documents_every_public_name() -> None:
    directives = {
        match.group(1)
        for page in (DOCS / "reference").glob("*.md")
        for match in re.finditer(r"^::: (\S+)", page.read_text(encoding="utf-8"), re.M)
    }
    documented = [_resolve(path) for path in directives]
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        if module_name in directives and module_name != "rxstargate":
            continue  # the module's own page lists its members
        missing += [
            f"{module_name}.{name}"
            for name in module.__all__
            if not any(getattr(module, name) is thing for thing in documented)
        ]
    assert not missing, f"not in docs/reference: {missing}"


def test_every_page_of_the_site_is_in_its_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s*- (?:[^:\n]+: )?(\S+\.md)\s*$", config, re.M))
    assert {_page_id(page) for page in PAGES} == listed


def test_the_home_pages_example_is_one_that_getting_started_runs() -> None:
    home = examples(DOCS / "index.md")
    runs = {example.code for example in _runnable(DOCS / "getting-started.md", needs_pulsar=True)}
    assert home, "the home page lost its example"
    assert all(example.code in runs for example in home)


def test_the_testing_guide_shows_a_pytest_module_on_memory_pulsar_and_virtual_time() -> None:
    modules = [example for example in examples(DOCS / "testing.md") if example.tests]
    assert modules, "the testing guide lost its pytest example"
    assert any("MemoryPulsar" in m.code and "TestScheduler" in m.code for m in modules)
    assert all(m.not_run is None and not m.needs_pulsar for m in modules)


@pytest.mark.usefixtures("no_leaked_threads")
def test_the_readmes_test_module_runs_under_pytest(tmp_path: Path) -> None:
    [module] = [example for example in examples(ROOT / "README.md") if example.tests]
    assert "MemoryPulsar" in module.code and "TestScheduler" in module.code
    _run_tests_here(module, tmp_path)


def test_the_readme_links_to_pages_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#\s]+)", readme)
    assert links, "the README links to no guide"
    assert [link for link in links if not (ROOT / link).is_file()] == []
