"""Timestamps in Pulsar's ISO_OFFSET_DATE_TIME format, both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxstargate._outgoing import encode_outgoing
from rxstargate._pulsar_time import (
    event_time_text,
    format_pulsar_time,
    parse_pulsar_time,
    to_epoch_millis,
)
from rxstargate.models import OutgoingMessage


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


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
        (datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC), "0999-12-31T23:59:59Z"),
        (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "9999-12-31T23:59:59.999Z"),
    ],
)
def test_format_writes_every_year_with_four_digits(moment: datetime, text: str) -> None:
    millis = to_epoch_millis(moment)
    assert format_pulsar_time(millis) == text
    assert parse_pulsar_time(text) == moment


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(999, 6, 1, tzinfo=timezone(timedelta(hours=2))),
        datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
    ],
)
def test_an_event_time_at_or_before_the_epoch_is_refused_before_sending(moment: datetime) -> None:
    with pytest.raises(ValueError, match="after 1970-01-01T00:00:00Z"):
        event_time_text(moment)


def test_an_event_time_just_after_the_epoch_is_written() -> None:
    moment = datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)
    assert event_time_text(moment) == "1970-01-01T00:00:00.001Z"


def test_a_message_with_an_event_time_before_the_epoch_gets_no_frame() -> None:
    message = OutgoingMessage(b"x", event_time=datetime(1, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="event_time must be after"):
        encode_outgoing(message, "1", None)
