"""The example app in examples/shop runs as written against local Pulsar."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

import rxstargate as rs
from tests.service.conftest import ROOT, until

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_leaked_threads")]

SHOP = ROOT / "examples" / "shop"


def test_the_shop_charges_orders_into_receipts_and_dead_letters_the_unreadable_one(
    pulsar: Any, topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(SHOP))
    config = tomllib.loads((SHOP / "shop.toml").read_text())
    assert config["url"] == "ws://127.0.0.1:8080"
    config["url"] = pulsar.ws_url
    names = {"orders": topic_name, "receipts": topic_name + "-r", "orders-dlq": topic_name + "-d"}
    config["consumers"]["billing"]["topic"] = names["orders"]
    config["producers"]["receipts"]["topic"] = names["receipts"]
    config["producers"]["dead-letters"]["topic"] = names["orders-dlq"]
    config["consumers"]["billing"]["retry"]["initial"] = 0.01
    lines = subprocess.run(
        [sys.executable, str(SHOP / "orders.py"), "40"], capture_output=True, text=True, check=True
    ).stdout.splitlines()

    app = rs.App.from_dict(config)
    with app, rs.Client(pulsar.ws_url) as client:
        orders = client.topic(names["orders"]).producer()
        for line in lines:
            customer, _, order = line.partition(":")
            orders.send(order, key=customer)
        billing = app.pipeline("billing")
        until(lambda: billing.stats.processed == 40 and billing.stats.dead_lettered == 1, "40+1")
    figures = app.metrics()
    assert figures.producers["receipts"].acks == 40
    assert figures.producers["dead-letters"].acks == 1
    assert figures.streams["billing"].retried == 2  # the unreadable order, tried 3 times


def test_the_audit_app_is_a_factory_the_run_command_can_name(
    pulsar: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(SHOP))
    monkeypatch.setenv("RXSTARGATE_URL", pulsar.ws_url)
    from rxstargate.service._loading import load_app

    app = load_app("shop:audit_app")
    try:
        assert sorted(app.readers) == ["audit"]
        assert app.client.url == pulsar.ws_url
    finally:
        app.stop()


def test_the_readmes_toml_makes_an_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    section = (ROOT / "README.md").read_text().split("## Running a pipeline as a service", 1)[1]
    match = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert match, "the README lost its TOML example"
    (tmp_path / "shopapp.py").write_text(
        "import rxstargate as rs\n"
        "def charge(message):\n    return message.payload\n"
        "class Totals(rs.operators.MessageHandler):\n"
        "    def init(self):\n        return 0\n"
        "    def handle(self, message, state):\n        return None, state + 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    app = rs.App.from_dict(tomllib.loads(match.group(1)))
    try:
        assert sorted(app.consumers) == ["billing"] and sorted(app.readers) == ["audit"]
        assert app.consumers["billing"].publish_to == "receipts"
    finally:
        app.stop()
