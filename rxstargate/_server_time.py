"""Pulsar's WebSocket timestamps, as the server side writes and reads them.

Pulsar formats ``publishTime`` and ``eventTime`` with Java's ``ISO_OFFSET_DATE_TIME`` (its
``DateFormatter``) and parses a producer's ``eventTime`` with the same formatter. This module is
the server side's own reading of that formatter (local Pulsar's gateway and MemoryPulsar share
it), kept apart from the client's so that one mistake cannot pass the tests of both sides.

Formatting: ``yyyy-MM-ddTHH:mm:ss``, then only the fraction digits needed (``.967``, ``.96``,
``.5`` or none), then ``Z`` (the gateway runs in UTC, as a JVM whose default zone is UTC).

Parsing (``ResolverStyle.STRICT``, case-insensitive): a ``T`` between date and time, seconds and
a 1-9 digit fraction optional, and a mandatory offset: ``Z``, ``+hh:mm`` or ``+hh:mm:ss`` (at most
18 hours). The instant is truncated to milliseconds, as ``Instant.toEpochMilli`` does.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta

__all__ = ["format_time", "parse_time"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ISO_OFFSET_DATE_TIME = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]{1,9}))?)?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<oh>[0-9]{2}):(?P<om>[0-9]{2})(?::(?P<os>[0-9]{2}))?)"
)
_MAX_OFFSET = timedelta(hours=18)


def format_time(epoch_millis: int) -> str:
    """Epoch milliseconds as Pulsar writes them, in UTC.

    Example:
        >>> format_time(1635548498967)
        '2021-10-29T23:01:38.967Z'
        >>> format_time(1635548498000)
        '2021-10-29T23:01:38Z'
    """
    seconds, millis = divmod(epoch_millis, 1000)
    return _second(seconds) + _FRACTIONS[millis]


@functools.lru_cache(maxsize=256)
def _second(seconds: int) -> str:
    """The text of a whole second; cached, as messages read together share a few seconds."""
    moment = _EPOCH + timedelta(seconds=seconds)
    return (  # four year digits, as Java writes them (strftime writes year 1 as "1")
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


_FRACTIONS = ["Z"] + ["." + f"{millis:03d}".rstrip("0") + "Z" for millis in range(1, 1000)]


def parse_time(text: str) -> int:
    """Epoch milliseconds of an ``ISO_OFFSET_DATE_TIME`` text.

    Raises:
        ValueError: when Java's formatter would refuse it (no offset, no ``T``, out of range).

    Example:
        >>> parse_time("2021-10-29T16:01:38.967-07:00")
        1635548498967
    """
    match = _ISO_OFFSET_DATE_TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"Text '{text}' could not be parsed as ISO_OFFSET_DATE_TIME")
    year, month, day = (int(part) for part in match["date"].split("-"))
    try:
        local = datetime(
            year, month, day, int(match["hour"]), int(match["minute"]), int(match["second"] or 0)
        )
    except ValueError as exc:
        raise ValueError(f"Text '{text}' could not be parsed: {exc}") from None
    offset = timedelta(0)
    if match["sign"]:
        offset = timedelta(
            hours=int(match["oh"]), minutes=int(match["om"]), seconds=int(match["os"] or 0)
        )
        if int(match["om"]) > 59 or int(match["os"] or 0) > 59 or offset > _MAX_OFFSET:
            raise ValueError(f"Text '{text}' could not be parsed: offset out of range")
        if match["sign"] == "-":
            offset = -offset
    seconds = (local.replace(tzinfo=UTC) - offset - _EPOCH) // timedelta(seconds=1)
    millis = int((match["fraction"] or "0").ljust(9, "0")[:3])
    return seconds * 1000 + millis
