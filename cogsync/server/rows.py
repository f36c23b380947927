"""How the data file encodes values: times as epoch milliseconds, records as rows and JSON.

`ServerStorage` and the change log store every time as an integer count of milliseconds
since the Unix epoch (UTC); a request's remembered result keeps its records as JSON.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from cogsync.models import Record

__all__ = [
    "RecordRow",
    "from_ms",
    "record_from_json",
    "record_json",
    "record_row",
    "to_ms",
]

RecordRow = tuple[str, str | None, int, int | None, str | None, int | None]
"""``(key, value, sync_count, last_modified_ms, last_modified_by, device_modified_ms)``."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def to_ms(value: datetime | None) -> int | None:
    """An aware datetime as epoch milliseconds (None stays None)."""
    return None if value is None else _ms(value)


@functools.lru_cache(maxsize=1024)  # a batch's records share a few time stamps
def _ms(value: datetime) -> int:
    return (value - _EPOCH) // _MILLISECOND


def from_ms(value: int | None) -> datetime | None:
    """Epoch milliseconds as an aware UTC datetime (None stays None)."""
    return None if value is None else _moment(value)


@functools.lru_cache(maxsize=4096)  # a page's records share a few time stamps
def _moment(ms: int) -> datetime:
    return _EPOCH + ms * _MILLISECOND


def record_row(r: Record) -> RecordRow:
    """The columns of ``records`` after ``(identity_id, dataset)`` for a record."""
    modified, device = to_ms(r.last_modified_date), to_ms(r.device_last_modified_date)
    return (r.key, r.value, r.sync_count, modified, r.last_modified_by, device)


def record_json(record: Record) -> dict[str, Any]:
    """A record as the JSON a remembered request result keeps."""
    return {
        "key": record.key,
        "value": record.value,
        "sync_count": record.sync_count,
        "last_modified_date": to_ms(record.last_modified_date),
        "last_modified_by": record.last_modified_by,
        "device_last_modified_date": to_ms(record.device_last_modified_date),
    }


def record_from_json(data: dict[str, Any]) -> Record:
    """The record `record_json` encoded."""
    return Record(
        key=data["key"],
        value=data["value"],
        sync_count=data["sync_count"],
        last_modified_date=from_ms(data["last_modified_date"]),
        last_modified_by=data["last_modified_by"],
        device_last_modified_date=from_ms(data["device_last_modified_date"]),
    )
