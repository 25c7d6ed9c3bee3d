"""Figures summed over processes, their Prometheus text, the metrics port and the log lines."""

from __future__ import annotations

import json
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from rxstargate.service import DURATION_BUCKETS, AppMetrics, ProducerMetrics, StreamMetrics
from rxstargate.service._http import MetricsServer
from rxstargate.service._logs import JsonFormatter, TextFormatter
from rxstargate.service._metrics import DurationHistogram
from rxstargate.service._prometheus import Exposition, render

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


def figures(processed: int, connected: int, ready: bool = True) -> AppMetrics:
    histogram = DurationHistogram()
    for seconds in (0.001, 0.3, 60.0)[:processed]:
        histogram.observe(seconds)
    stream = StreamMetrics(
        "consumer",
        processed=processed,
        in_flight=2,
        connected=connected,
        handler_seconds=histogram.snapshot(),
    )
    producer = ProducerMetrics(acks=processed, failures=1, reconnects=1, connected=connected)
    return AppMetrics({"billing": stream}, {"out": producer}, ready)


def test_a_histogram_puts_each_duration_in_its_bucket() -> None:
    histogram = DurationHistogram()
    for seconds in (0.005, 0.0051, 11.0):
        histogram.observe(seconds)
    counts = histogram.snapshot().counts
    assert counts[0] == 1  # le 0.005
    assert counts[1] == 1  # le 0.01
    assert counts[len(DURATION_BUCKETS)] == 1  # above every bound
    assert histogram.snapshot().count == 3


def test_figures_of_several_processes_add_up_and_survive_json() -> None:
    total = figures(3, 1) + figures(2, 1, ready=False)
    billing = total.streams["billing"]
    assert (billing.processed, billing.in_flight, billing.connected) == (5, 4, 2)
    assert billing.handler_seconds.count == 5
    assert total.producers["out"] == ProducerMetrics(5, 2, 2, 2)
    assert not total.ready and total.processes == 2
    assert AppMetrics.from_json(json.loads(json.dumps(total.to_json()))) == total
    ended = total.counters_only()
    assert ended.streams["billing"].processed == 5
    assert ended.streams["billing"].in_flight == ended.streams["billing"].connected == 0


def test_the_prometheus_text_names_every_figure() -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    body, content_type = render(Exposition(figures(3, 2), workers=2, worker_restarts=1))
    assert content_type.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parser.text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    billing = (("consumer", "billing"),)
    assert samples[("rxstargate_processed_total", billing)] == 3
    assert samples[("rxstargate_in_flight", billing)] == 2
    assert samples[("rxstargate_handler_seconds_count", billing)] == 3
    assert samples[("rxstargate_handler_seconds_bucket", (*billing, ("le", "0.005")))] == 1
    assert samples[("rxstargate_handler_seconds_bucket", (*billing, ("le", "+Inf")))] == 3
    assert samples[("rxstargate_producer_failures_total", (("producer", "out"),))] == 1
    assert samples[("rxstargate_reconnects_total", (("kind", "producer"), ("stream", "out")))] == 1
    assert samples[("rxstargate_connected", (("kind", "consumer"), ("stream", "billing")))] == 2
    assert samples[("rxstargate_worker_processes", ())] == 2
    assert samples[("rxstargate_worker_restarts_total", ())] == 1
    assert samples[("rxstargate_ready", ())] == 1


@pytest.fixture
def port() -> Iterator[tuple[MetricsServer, dict[str, AppMetrics]]]:
    shown = {"now": figures(1, 1, ready=False)}
    server = MetricsServer("127.0.0.1", 0, lambda: Exposition(shown["now"]))
    yield server, shown
    server.close()


def get(server: MetricsServer, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_port_answers_health_and_readiness_from_the_figures(
    port: tuple[MetricsServer, dict[str, AppMetrics]],
) -> None:
    server, shown = port
    assert get(server, "/healthz") == (200, "ok\n")
    assert get(server, "/readyz") == (503, "not ready\n")
    shown["now"] = figures(1, 1, ready=True)
    assert get(server, "/readyz") == (200, "ready\n")
    assert get(server, "/nothing")[0] == 404


def test_without_prometheus_client_the_metrics_path_says_what_to_install(
    port: tuple[MetricsServer, dict[str, AppMetrics]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = port
    monkeypatch.setattr(server._server, "has_prometheus", False)
    status, text = get(server, "/metrics")
    assert status == 501
    assert "pip install 'rxstargate[metrics]'" in text
    assert "in a clone of rxstargate: pip install '.[metrics]'" in text  # as the README says


def test_a_port_in_use_is_a_configuration_error(
    port: tuple[MetricsServer, dict[str, AppMetrics]],
) -> None:
    server, _ = port
    with pytest.raises(ValueError, match=f"cannot serve metrics on 127.0.0.1:{server.port}"):
        MetricsServer("127.0.0.1", server.port, lambda: Exposition(AppMetrics()))


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("rxstargate.app", logging.WARNING, __file__, 1, message, (), None)
    for name, value in extra.items():
        setattr(made, name, value)
    return made


def test_log_lines_are_one_line_each_with_the_streams_name() -> None:
    line = record("consumer billing lost\nits connection", event="disconnected", stream="billing")
    fields = json.loads(JsonFormatter().format(line))
    assert fields["event"] == "disconnected" and fields["stream"] == "billing"
    assert fields["level"] == "warning" and fields["message"].startswith("consumer billing")
    text = TextFormatter().format(record("a\nb", _in_worker=2))
    assert "\n" not in text and text.endswith("WARNING [worker 2] rxstargate.app: a b")
    try:
        raise RuntimeError("line one\nline two")
    except RuntimeError:
        failed = record("failed")
        failed.exc_info = sys.exc_info()
    assert TextFormatter().format(failed).endswith("(RuntimeError: line one line two)")
    assert json.loads(JsonFormatter().format(failed))["error"] == "RuntimeError: line one\nline two"
