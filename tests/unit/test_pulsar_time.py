"""Timestamps in Pulsar's ISO_OFFSET_DATE_TIME format, both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxstargate._pulsar_time import format_pulsar_time, parse_pulsar_time, to_epoch_millis


@pytest.mark.parametrize(
    ("millis", "text"),
    [
        (1635548498967, "2021-10-29T23:01:38.967Z"),
        (1635548498960, "2021-10-29T23:01:38.96Z"),
        (1635548498500, "2021-10-29T23:01:38.5Z"),
        (1635548498000, "2021-10-29T23:01:38Z"),
    ],
)
def test_format_prints_only_the_fraction_digits_needed(millis: int, text: str) -> None:
    assert format_pulsar_time(millis) == text


def test_format_with_an_offset() -> None:
    pacific = timezone(timedelta(hours=-7))
    assert format_pulsar_time(1635548498967, pacific) == "2021-10-29T16:01:38.967-07:00"


@pytest.mark.parametrize(
    "text",
    [
        "2021-10-29T16:01:38.967-07:00",
        "2021-10-29T23:01:38.967Z",
        "2021-10-29T23:01:38.967000000Z",
        "2021-10-29T23:01:38.967+00:00",
    ],
)
def test_parse_accepts_every_form_pulsar_writes(text: str) -> None:
    assert parse_pulsar_time(text) == datetime(2021, 10, 29, 23, 1, 38, 967000, tzinfo=UTC)


def test_parse_legacy_form_is_utc() -> None:
    moment = parse_pulsar_time("2016-08-30 16:45:57.785")
    assert moment.tzinfo is not None
    assert moment == datetime(2016, 8, 30, 16, 45, 57, 785000, tzinfo=UTC)


def test_parse_refuses_garbage() -> None:
    with pytest.raises(ValueError):
        parse_pulsar_time("yesterday")


def test_naive_event_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        to_epoch_millis(datetime(2024, 1, 1))


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_round_trip_through_text(millis: int) -> None:
    assert to_epoch_millis(parse_pulsar_time(format_pulsar_time(millis))) == millis
