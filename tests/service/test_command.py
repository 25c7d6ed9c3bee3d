"""``rxstargate run``'s arguments and the refusals it makes before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from rxstargate.cli import main

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

APP = """
url = "ws://127.0.0.1:9"
[consumers.billing]
topic = "orders"
subscription = "billing"
subscription_type = "{kind}"
handler = "json:dumps"
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``rxstargate ARGV`` in this process: (exit status, stderr)."""
    try:
        status = main(list(argv))
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    return status, capsys.readouterr().err


def test_run_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    assert info.value.code == 0
    assert "examples:\n  rxstargate run " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "no-such-app.toml"], "cannot read the app's file"),
        (["run", "shop"], "APP must be a TOML file or module:attribute"),
        (["run", "no_such_module_anywhere:app"], "no module named 'no_such_module_anywhere'"),
    ],
)
def test_an_app_that_cannot_be_loaded_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, err = run(capsys, *argv)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("rxstargate: ") and message in err


def test_several_processes_refuse_an_exclusive_subscription_up_front(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    app = tmp_path / "app.toml"
    app.write_text(APP.format(kind="Exclusive"))
    status, err = run(capsys, "run", str(app), "--processes", "2")
    assert status == 2
    assert err.count("\n") == 1
    assert "consumer 'billing' has an Exclusive subscription" in err


def test_several_processes_refuse_readers_up_front(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    app = tmp_path / "app.toml"
    app.write_text(
        APP.format(kind="Shared") + '[readers.audit]\ntopic = "o"\nhandler = "json:dumps"\n'
    )
    status, err = run(capsys, "run", str(app), "--processes", "3")
    assert status == 2
    assert "reader 'audit' would read every message once per process" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "app.toml", "--processes", "0"],
        ["run", "app.toml", "--metrics-port", "70000"],
        ["run", "app.toml", "--drain-timeout", "-1"],
        ["run", "app.toml", "--log-format", "xml"],
    ],
)
def test_bad_arguments_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    status, err = run(capsys, *argv)
    assert status == 2
    assert err.count("\n") == 1 and "rxstargate run: error:" in err
