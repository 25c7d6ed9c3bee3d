"""Pulsar's WebSocket timestamps: ISO-8601 with an offset, as Java writes them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

_FRACTION = re.compile(r"(\.\d+)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_pulsar_time(epoch_millis: int, tz: timezone | None = None) -> str:
    """Format epoch milliseconds the way Pulsar's WebSocket service does.

    Java's ``ISO_OFFSET_DATE_TIME`` prints only the fraction digits it needs
    (``.967``, ``.96``, ``.5`` or none) and ``Z`` for UTC.

    Example:
        >>> format_pulsar_time(1635548498967)
        '2021-10-29T23:01:38.967Z'
    """
    zone = tz or UTC
    moment = (_EPOCH + timedelta(milliseconds=epoch_millis)).astimezone(zone)
    # Java prints at least four year digits; strftime("%Y") prints year 1 as "1" here.
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    millis = epoch_millis % 1000
    if millis:
        text += "." + f"{millis:03d}".rstrip("0")
    offset = moment.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        return text + "Z"
    sign = "+" if offset >= timedelta(0) else "-"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def parse_pulsar_time(text: str) -> datetime:
    """Parse a Pulsar timestamp into a timezone-aware datetime.

    Accepts what ``ISO_OFFSET_DATE_TIME`` produces (``Z`` or ``+hh:mm``, any
    fraction length up to nanoseconds) and the legacy ``2016-08-30 16:45:57.785``
    form of old brokers, which carries no zone and is read as UTC.

    Raises:
        ValueError: when ``text`` is not a timestamp.

    Example:
        >>> parse_pulsar_time("2021-10-29T16:01:38.96-07:00").isoformat()
        '2021-10-29T16:01:38.960000-07:00'
    """
    try:  # the fast path: Python 3.11 reads what Java writes (Z, offsets, 1-9 fraction digits)
        moment = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    normalised = text.strip()
    if normalised.endswith(("Z", "z")):
        normalised = normalised[:-1] + "+00:00"
    match = _FRACTION.search(normalised)
    if match:
        digits = match.group(1)[1:]
        normalised = normalised.replace(match.group(1), "." + digits[:6].ljust(6, "0"), 1)
    moment = datetime.fromisoformat(normalised)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def event_time_text(moment: datetime) -> str:
    """An aware ``event_time`` as the ``eventTime`` text of a send frame.

    Pulsar's message builder takes event times after the epoch only (``eventTime(long)``
    refuses 0 and less, and its WebSocket service then closes the socket), so earlier ones are
    refused here, before anything is sent.

    Raises:
        ValueError: when ``moment`` is not an aware datetime after 1970-01-01T00:00:00Z.

    Example:
        >>> event_time_text(datetime(2021, 10, 29, 23, 1, 38, 967000, tzinfo=UTC))
        '2021-10-29T23:01:38.967Z'
    """
    millis = to_epoch_millis(moment)
    if millis <= 0:
        raise ValueError(
            f"event_time must be after 1970-01-01T00:00:00Z (Pulsar stores it as positive"
            f" milliseconds since the epoch), not {moment.isoformat()}"
        )
    return format_pulsar_time(millis)


def to_epoch_millis(moment: datetime, name: str = "event_time") -> int:
    """Milliseconds since the epoch of an aware datetime (naive ones are refused).

    Raises:
        ValueError: when ``moment`` is not a datetime or has no timezone.
    """
    if not isinstance(moment, datetime):
        raise ValueError(f"{name} must be an aware datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (Pulsar needs an offset)")
    return (moment - _EPOCH) // timedelta(milliseconds=1)
