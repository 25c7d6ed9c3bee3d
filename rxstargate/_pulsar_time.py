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
    moment = datetime.fromtimestamp(epoch_millis // 1000, zone).replace(
        microsecond=(epoch_millis % 1000) * 1000
    )
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
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
