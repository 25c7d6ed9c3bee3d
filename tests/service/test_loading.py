"""App.from_dict, App.from_toml and the APP argument of ``rxstargate run``, without a broker."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rxstargate as rs
from rxstargate.service._loading import load_app

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

URL = "ws://127.0.0.1:9"

SHOP = """
url = "ws://127.0.0.1:9"
[client]
close_timeout = 2
reconnect = { initial = 0.2, give_up_after = 30 }
[producers.receipts]
topic = "receipts"
[producers.receipts.options]
batching_enabled = false
[consumers.billing]
topic = "orders"
subscription = "billing"
subscription_type = "Key_Shared"
handler = "tests.service.test_specs:charge"
concurrency = 4
key_ordered = true
publish_to = "receipts"
retry = { attempts = 3, initial = 0.1 }
[consumers.billing.options]
max_redeliver_count = 3
[readers.audit]
topic = "orders"
handler = "tests.service.test_specs:Counter"
start = "earliest"
"""


@pytest.fixture
def apps() -> Iterator[list[rs.App]]:
    made: list[rs.App] = []
    yield made
    for app in made:
        app.stop()


def test_a_toml_file_describes_a_whole_app(tmp_path: Path, apps: list[rs.App]) -> None:
    path = tmp_path / "shop.toml"
    path.write_text(SHOP)
    app = rs.App.from_toml(path)
    apps.append(app)
    assert sorted(app.producers) == ["receipts"]
    billing = app.consumers["billing"]
    assert billing.subscription_type == "Key_Shared"
    assert billing.concurrency == 4 and billing.key_ordered and billing.publish_to == "receipts"
    assert billing.retry == rs.operators.Retry(attempts=3, initial=0.1)
    assert dict(billing.options) == {"max_redeliver_count": 3}
    assert app.readers["audit"].start == "earliest"
    assert dict(app.producers["receipts"].options) == {"batching_enabled": False}
    assert app.client.url == URL


def test_the_url_and_token_come_from_the_environment_or_a_token_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, apps: list[rs.App]
) -> None:
    monkeypatch.setenv("RXSTARGATE_URL", URL)
    monkeypatch.setenv("RXSTARGATE_TOKEN", "from-the-environment")
    apps.append(rs.App.from_dict({}))
    assert apps[-1].client.url == URL
    assert "token=<hidden>" in repr(apps[-1].client)
    (tmp_path / "token.txt").write_text("secret\n")
    (tmp_path / "app.toml").write_text('token_file = "token.txt"\n')
    apps.append(rs.App.from_toml(tmp_path / "app.toml"))  # relative to the file, not here
    monkeypatch.delenv("RXSTARGATE_URL")
    with pytest.raises(rs.ConfigurationError, match=r"no url: set url .* \$RXSTARGATE_URL"):
        rs.App.from_dict({})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ulr": URL}, "unknown setting 'ulr'"),
        (
            {"consumers": {"b": {"topic": "o", "subscription": "s"}}},
            "consumers.b: 'handler' is missing",
        ),
        (
            {
                "consumers": {
                    "b": {
                        "topic": "o",
                        "subscription": "s",
                        "handler": "json:dumps",
                        "concurency": 2,
                    }
                }
            },
            "consumers.b: unknown setting 'concurency'",
        ),
        (
            {"producers": {"p": {"topic": "o", "timeout": 3, "options": {"timeout": 3}}}},
            "set twice",
        ),
        ({"producers": {"p": "orders"}}, "producers.p must be a table"),
        (
            {"readers": {"r": {"topic": "o", "handler": "json:dumps", "retry": {"tries": 3}}}},
            "readers.r.retry: .*unexpected keyword argument 'tries'",
        ),
        (
            {"readers": {"r": {"topic": "o", "handler": "json:dumps", "restart": {"cap": -1}}}},
            "readers.r.restart: cap must be positive",
        ),
        ({"client": {"colse_timeout": 1}}, "client: unknown setting 'colse_timeout'"),
        ({"token": "a", "token_file": "b"}, "token or token_file, not both"),
        ({"token_file": "no-such-file"}, "cannot read the token file"),
        (
            {
                "consumers": {
                    "b": {
                        "topic": "o",
                        "subscription": "s",
                        "handler": "json:dumps",
                        "options": {"max_redeliver_count": "three"},
                    }
                }
            },
            "consumer 'b'.*max_redeliver_count",
        ),
    ],
)
def test_a_bad_setting_is_refused_naming_where_it_is(
    tmp_path: Path, data: dict[str, Any], message: str
) -> None:
    data = {"url": URL, **data}
    with pytest.raises(rs.ConfigurationError, match=message):
        rs.App.from_dict(data, base_dir=tmp_path)


def test_a_toml_file_that_cannot_be_read_or_parsed_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(rs.ConfigurationError, match="cannot read the app's file"):
        rs.App.from_toml(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("url = \n")
    with pytest.raises(rs.ConfigurationError, match="not valid TOML"):
        rs.App.from_toml(tmp_path / "bad.toml")


def made_app() -> rs.App:
    """A factory the APP argument may name."""
    return rs.App(URL, producers={"out": rs.ProducerSpec("receipts")})


not_an_app = 42


def test_the_app_argument_is_a_toml_file_an_app_or_a_function_making_one(
    tmp_path: Path, apps: list[rs.App]
) -> None:
    path = tmp_path / "shop.toml"
    path.write_text(SHOP)
    apps.append(load_app(str(path)))
    assert sorted(apps[-1].consumers) == ["billing"]
    apps.append(load_app("tests.service.test_loading:made_app"))
    assert sorted(apps[-1].producers) == ["out"]
    with pytest.raises(rs.ConfigurationError, match=r"is not an rs\.App \(it is 42\)"):
        load_app("tests.service.test_loading:not_an_app")
    with pytest.raises(rs.ConfigurationError, match="no such file"):
        load_app("shop.toml.bak")


def test_a_toml_apps_handlers_are_imported_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, apps: list[rs.App]
) -> None:
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "till_of_this_test.py").write_text("def ring(message):\n    return None\n")
    (tmp_path / "app.toml").write_text(
        f'url = "{URL}"\n[consumers.c]\ntopic = "o"\nsubscription = "s"\n'
        'handler = "till_of_this_test:ring"\n'
    )
    apps.append(load_app("app.toml"))
    assert sorted(apps[-1].consumers) == ["c"]
