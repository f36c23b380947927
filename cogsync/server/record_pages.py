"""The rows of one listRecords page, read from the data file.

A page holds the records with ``last_sync_count < sync_count <= upTo`` after a position,
ordered by (sync count, key). Pages from the start of a dataset (a new device's first
pull) want nearly every row: they read the dataset along its primary key and sort the
rows here, which is cheaper than a thousand lookups through the sync-count index. Both
ways return the very same rows in the same order (keys compare as SQLite's BINARY
collation does: UTF-8 bytes order as code points).
"""

from __future__ import annotations

import sqlite3
from operator import itemgetter

from cogsync.server.rows import RecordRow

__all__ = ["page_rows"]

_SELECT = (
    "SELECT key, value, sync_count, last_modified_date, last_modified_by, "
    "device_last_modified_date FROM records WHERE identity_id=? AND dataset=? "
)
_BY_INDEX = (
    _SELECT + "AND sync_count>? AND sync_count<=? AND (sync_count, key) > (?, ?) "
    "ORDER BY sync_count, key LIMIT ?"
)
_BY_KEY = _SELECT + "AND +sync_count>? AND +sync_count<=? LIMIT ?"  # (+: not the index)
_ORDER = itemgetter(2, 0)


def page_rows(
    db: sqlite3.Connection,
    identity_id: str,
    dataset: str,
    last_sync_count: int,
    up_to: int,
    position: tuple[int, str],
    limit: int,
) -> list[RecordRow]:
    """Up to ``limit`` rows in ``(last_sync_count, up_to]`` after ``position``, in order."""
    if last_sync_count == 0 and position == (0, ""):  # everything, from the first page on
        scan = limit * 2  # (beyond that many rows, say tombstones, the index is cheaper)
        rows: list[RecordRow] = db.execute(
            _BY_KEY, (identity_id, dataset, last_sync_count, up_to, scan + 1)
        ).fetchall()
        if len(rows) <= scan:
            rows.sort(key=_ORDER)
            return rows[:limit]
    args = (identity_id, dataset, last_sync_count, up_to, *position, limit)
    found: list[RecordRow] = db.execute(_BY_INDEX, args).fetchall()
    return found
