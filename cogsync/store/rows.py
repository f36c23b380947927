"""How a `SQLiteStore` row becomes a domain value, and a datetime becomes column text."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from cogsync.models import DatasetState, Record, RecordRow

__all__ = ["SyncedRows", "as_dataset", "as_moment", "as_record", "as_text"]


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


class SyncedRows:
    """The ``statements.UPSERT_SYNCED`` rows of the applied sync writes queued (`add`, then
    `add_pulled`), made one at a time as the statement steps through `drain` (a pull of
    1,024 records keeps no 1,024 row tuples alive). ``newest`` is the latest modification
    time among them."""

    def __init__(self, owner: str, name: str) -> None:
        self.owner, self.name = owner, name
        self.newest: str | None = None
        self._ours: list[tuple[Record, int, str | None]] = []
        self._pulled: list[RecordRow] = []

    def add(self, record: Record, revision: int, base: str | None = None) -> None:
        """Queue ``record``'s write, keeping local revision ``revision`` (and ``base``, the
        sync base of a dirty one)."""
        self._ours.append((record, revision, base))

    def add_pulled(self, row: RecordRow) -> None:
        """Queue a clean pulled record's write at revision 0 (after every `add`-ed one)."""
        self._pulled.append(row)

    def drain(self) -> Iterator[tuple[Any, ...]]:
        """The rows of the writes queued so far, in order; the queue is empty after."""
        owner, name, newest = self.owner, self.name, self.newest
        texts: dict[datetime | None, str | None] = {None: None}  # records share time stamps
        ours = (
            (r.key, r.value, r.sync_count, r.last_modified_date, r.last_modified_by,
             r.device_last_modified_date, int(r.dirty), revision, base)
            for r, revision, base in self._ours
        )  # fmt: skip
        pulled = ((*row, 0, 0, None) for row in self._pulled)
        try:
            for key, value, count, moment, by, device_moment, dirty, revision, base in chain(
                ours, pulled
            ):
                try:
                    modified = texts[moment]
                except KeyError:
                    modified = texts[moment] = as_text(moment)
                try:
                    device_modified = texts[device_moment]
                except KeyError:
                    device_modified = texts[device_moment] = as_text(device_moment)
                if modified is not None and (newest is None or modified > newest):
                    newest = modified
                yield (owner, name, key, value, count, modified, by, device_modified,
                       dirty, revision, base if dirty else None, dirty)  # fmt: skip
        finally:
            self.newest = newest
            self._ours.clear()
            self._pulled.clear()
