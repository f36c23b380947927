"""How a `SQLiteStore` row becomes a domain value, and a datetime becomes column text."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cogsync.models import DatasetState, Record

__all__ = ["as_dataset", "as_moment", "as_record", "as_text"]


def as_text(moment: datetime | None) -> str | None:
    """ISO-8601 UTC text of fixed width (so text order is time order); naive means UTC."""
    return None if moment is None else _text(moment)


def as_moment(text: str | None) -> datetime | None:
    """The datetime of column text written by `as_text` (None stays None)."""
    return None if text is None else _moment(text)


# Records written together share their time stamps: convert each distinct one once.
@functools.lru_cache(maxsize=1024)
def _text(moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


_moment = functools.lru_cache(maxsize=1024)(datetime.fromisoformat)


def as_record(row: Sequence[Any]) -> Record:
    """A `Record` from a row of ``statements.RECORD_COLUMNS``."""
    key, value, count, modified, by, device_modified, dirty, revision = row
    modified_at, device_modified_at = as_moment(modified), as_moment(device_modified)
    return Record(key, value, count, modified_at, by, device_modified_at, bool(dirty), revision)


def as_dataset(row: Sequence[Any]) -> DatasetState:
    """A `DatasetState` from a row of ``statements.DATASET_COLUMNS``."""
    return DatasetState(row[0], row[1], bool(row[2]), as_moment(row[3] or None))
