"""The ``AWSDateTime`` codec: ISO-8601 UTC with milliseconds and a ``Z``, as AppSync writes it.

Every place that turns a datetime into protocol text, or protocol text into a datetime, goes
through this module: the server's GraphQL scalar, the client's GraphQL backend, the
migration targets and the server's admin and change-stream payloads.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["as_utc", "format_datetime", "parse_datetime", "parse_loose"]

_DATETIME_RE = re.compile(
    r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}(?::\d{2}(?:\.(\d{1,9}))?)?)"
    r"(Z|[+-]\d{2}:\d{2}(?::\d{2})?)"
)
DATETIME_HINT = "expected ISO-8601 with a time zone, e.g. 2024-05-01T12:00:00.000Z"


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_datetime(value: datetime) -> str:
    """Render an aware datetime as AppSync does: UTC, milliseconds, ``Z`` suffix.

    Raises:
        ValueError: ``value`` is naive (pass it through `as_utc` first if naive means UTC).
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime {value!r} has no time zone; cogsync uses aware UTC times")
    # isoformat pads years below 1000 to four digits, as the parser requires
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_datetime(text: str) -> datetime:
    """Parse an ``AWSDateTime`` strictly into an aware UTC datetime (ms precision).

    Raises:
        ValueError: ``text`` is not ISO-8601 date-time with a time zone.
    """
    match = _DATETIME_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid AWSDateTime {text[:64]!r}: {DATETIME_HINT}")
    date, time, fraction, zone = match.groups()
    if fraction is not None:
        time = time[: -len(fraction)] + (fraction + "000000")[:6]
    if zone == "Z":
        zone = "+00:00"
    try:
        utc = datetime.fromisoformat(f"{date}T{time}{zone}").astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"invalid AWSDateTime {text[:64]!r}: {exc}") from exc
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def parse_loose(text: str) -> datetime:
    """Parse any ISO-8601 date-time into an aware UTC datetime; naive text means UTC.

    For answers from peers that may not follow AppSync's exact form.

    Raises:
        ValueError: ``text`` is not ISO-8601.
    """
    return as_utc(datetime.fromisoformat(text))
