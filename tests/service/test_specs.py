"""Specs and App construction without a broker: what is refused, and how it is named."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import rxstargate as rs
from rxstargate import operators as rso

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

NOWHERE = "ws://127.0.0.1:9"  # nothing connects before start()


def charge(message: rs.Message[Any]) -> bytes:
    return message.payload


class Counter(rso.MessageHandler[int]):
    def init(self) -> int:
        return 0

    def handle(self, message: rs.Message[Any], state: int) -> tuple[Any, int]:
        return None, state + 1


@pytest.fixture
def apps() -> Iterator[list[rs.App]]:
    """Apps made by a test, stopped after it (their clients closed)."""
    made: list[rs.App] = []
    yield made
    for app in made:
        app.stop()


def make(apps: list[rs.App], **kwargs: Any) -> rs.App:
    app = rs.App(NOWHERE, **kwargs)
    apps.append(app)
    return app


def test_specs_keep_pulsar_options_apart_from_their_own_settings() -> None:
    spec = rs.ConsumerSpec(
        "orders", "billing", handler=charge, subscription_type="Key_Shared", max_redeliver_count=3
    )
    assert spec.subscription_type == "Key_Shared"
    assert dict(spec.options) == {"max_redeliver_count": 3}
    assert rs.ProducerSpec("receipts", batching_enabled=True).options["batching_enabled"] is True
    assert rs.ReaderSpec("orders", handler="shop:log").handler == "shop:log"


@pytest.mark.parametrize(
    ("make_spec", "message"),
    [
        (lambda: rs.ProducerSpec(""), "topic must be a non-empty str"),
        (lambda: rs.ProducerSpec("t", schema=42), "schema must be a marshmallow Schema"),
        (lambda: rs.ConsumerSpec("t", " ", handler=charge), "subscription must be"),
        (lambda: rs.ConsumerSpec("t", "s", handler=charge, subscription_type="Fan"), "one of"),
        (lambda: rs.ConsumerSpec("t", "s", handler=42), "handler must be a callable"),
        (lambda: rs.ConsumerSpec("t", "s", handler="shop.charge"), "'module:attribute'"),
        (lambda: rs.ConsumerSpec("t", "s", handler=charge, on_failure="drop"), "on_failure"),
        (lambda: rs.ConsumerSpec("t", "s", handler=charge, publish_to=""), "publish_to"),
        (lambda: rs.ReaderSpec("t", handler=charge, restart=5), "restart must be"),
        (
            lambda: rs.ReaderSpec("t", handler=charge, dead_letter_to="dlq", on_failure="error"),
            "contradicts",
        ),
    ],
)
def test_a_spec_refuses_a_bad_setting_of_its_own(make_spec: Any, message: str) -> None:
    with pytest.raises(rs.ConfigurationError, match=message):
        make_spec()


def test_an_app_refuses_a_bad_pulsar_option_with_todays_error_and_the_streams_name(
    apps: list[rs.App],
) -> None:
    with pytest.raises(rs.InvalidOptionError, match=r"consumer 'billing': .*max_redeliver") as info:
        make(
            apps,
            consumers={
                "billing": rs.ConsumerSpec("o", "b", handler=charge, max_redeliver_count="x")
            },
        )
    assert "max_redeliver_count" in str(info.value.messages)
    with pytest.raises(rs.InvalidOptionError, match="producer 'out'"):
        make(apps, producers={"out": rs.ProducerSpec("o", no_such_option=1)})
    with pytest.raises(rs.ConfigurationError, match="consumer 'billing': concurrency"):
        make(apps, consumers={"billing": rs.ConsumerSpec("o", "b", handler=charge, concurrency=0)})
    with pytest.raises(rs.InvalidTopicNameError, match="producer 'out'"):
        make(apps, producers={"out": rs.ProducerSpec("a/b/c/d/e")})


def test_an_app_refuses_names_it_cannot_resolve(apps: list[rs.App]) -> None:
    out = {"out": rs.ProducerSpec("receipts")}
    with pytest.raises(rs.ConfigurationError, match="publish_to='missing' is not one of"):
        make(
            apps,
            producers=out,
            consumers={"c": rs.ConsumerSpec("o", "s", handler=charge, publish_to="missing")},
        )
    with pytest.raises(rs.ConfigurationError, match="dead_letter_to='dlq'"):
        make(apps, readers={"r": rs.ReaderSpec("o", handler=charge, dead_letter_to="dlq")})
    with pytest.raises(rs.ConfigurationError, match="share one set of names"):
        make(
            apps,
            consumers={"x": rs.ConsumerSpec("o", "s", handler=charge)},
            readers={"x": rs.ReaderSpec("o", handler=charge)},
        )
    with pytest.raises(rs.ConfigurationError, match="must be a ConsumerSpec"):
        make(apps, consumers={"x": rs.ReaderSpec("o", handler=charge)})


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("no_such_module_here:charge", "no module named 'no_such_module_here'"),
        ("json:no_such_function", "'json' has no attribute 'no_such_function'"),
        ("json:__doc__", "is a str, not a callable"),
        ("tests.service.broken_module:anything", "importing 'tests.service.broken_module' failed"),
    ],
)
def test_a_handler_import_path_that_does_not_resolve_is_named(
    apps: list[rs.App], handler: str, message: str
) -> None:
    with pytest.raises(rs.ConfigurationError, match=f"consumer 'billing': handler: .*{message}"):
        make(apps, consumers={"billing": rs.ConsumerSpec("o", "s", handler=handler)})


def test_handlers_are_taken_from_import_paths_and_message_handler_classes(
    apps: list[rs.App],
) -> None:
    app = make(
        apps,
        consumers={
            "by_path": rs.ConsumerSpec("o", "a", handler="tests.service.test_specs:charge"),
            "by_class": rs.ConsumerSpec("o", "b", handler=Counter),
            "by_class_path": rs.ConsumerSpec("o", "c", handler="tests.service.test_specs:Counter"),
        },
        readers={"audit": rs.ReaderSpec("o", handler=print, start="earliest")},
    )
    assert app.pipeline("by_path").state == rs.PipelineState.NEW
    assert sorted(app.metrics().streams) == ["audit", "by_class", "by_class_path", "by_path"]


def test_lookups_by_name_say_what_the_app_has(apps: list[rs.App]) -> None:
    app = make(
        apps,
        producers={"out": rs.ProducerSpec("receipts")},
        consumers={"billing": rs.ConsumerSpec("orders", "billing", handler=charge)},
    )
    assert app.producer("out").topic == rs.TopicName.parse("receipts")
    assert isinstance(app.pipeline("billing"), rs.Pipeline)
    with pytest.raises(
        rs.ConfigurationError, match=r"no producer named 'in' \(the app's: \['out'\]\)"
    ):
        app.producer("in")
    with pytest.raises(rs.ConfigurationError, match="no consumer or reader named 'out'"):
        app.pipeline("out")


def test_an_app_needs_a_url_or_a_client_and_not_both() -> None:
    with pytest.raises(rs.ConfigurationError, match="needs a url"):
        rs.App()
    with rs.Client(NOWHERE) as client:
        with pytest.raises(rs.ConfigurationError, match="either a client or a url"):
            rs.App(NOWHERE, client=client)
        app = rs.App(client=client, producers={"out": rs.ProducerSpec("receipts")})
        app.stop()
        assert not client.closed  # a client of yours stays yours


def test_an_app_runs_once_and_waits_only_once_started(apps: list[rs.App]) -> None:
    app = make(apps)
    with pytest.raises(rs.StargateError, match="never started"):
        app.wait()
    app.start()
    with pytest.raises(rs.StargateTimeoutError):
        app.wait(timeout=0)
    app.stop()
    assert app.state == rs.service.AppState.STOPPED
    app.wait()  # stopped: returns at once
    with pytest.raises(rs.StargateError, match="runs once"):
        app.start()
