"""The remembered results of client request ids (the data file's ``requests`` table).

A push or deletion carries a client request id; what its answer needs is stored with it in
the same transaction, so a retry of the request (the answer was lost) gets the first result
back instead of applying the batch twice. An id reused for another request is refused.

The memo is bounded and small:

* per dataset, only the newest ``replay_requests`` ids are kept, and none older than
  ``replay_max_age`` (`cogsync.server.bounds.ServerLimits`); an older id is a new request;
* a memo keeps the resulting sync count, the deleted flag and the written keys in answer
  order, never values. A replay reads each record back: a record still at the push's sync
  count is exactly what the push wrote (the same key, value, dates and device), so the
  replayed answer is identical to the first one. A record a later batch has replaced is
  left out of the replayed answer (as on the AppSync backend): its first value is gone.

Results remembered by older releases (with values, no ``seq``) are still replayed as stored;
they count as the oldest ids of their dataset and are dropped by the same bounds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from cogsync.models import Record
from cogsync.server.changes import DatasetChange
from cogsync.server.rows import from_ms, record_from_json, to_ms
from cogsync.server.wire import InvalidRequestError

__all__ = ["recall_request", "remember_request"]

_FORMAT = 2  # the memo format; results without "v" hold their records (older releases)
_CHUNK = 500  # keys per SELECT (SQLite's bound on parameters is far above)


def recall_request(
    db: sqlite3.Connection, identity_id: str, client_request_id: str, kind: str, dataset: str
) -> DatasetChange | None:
    """The stored result of a request id (``applied=False``), or None if it is new.

    Raises:
        InvalidRequestError: the id was used for a request of another kind or dataset.
    """
    row = db.execute(
        "SELECT kind, dataset, result FROM requests WHERE identity_id=? AND client_request_id=?",
        (identity_id, client_request_id),
    ).fetchone()
    if row is None:
        return None
    if (row[0], row[1]) != (kind, dataset):
        raise InvalidRequestError(
            f"clientRequestId {client_request_id[:64]!r} was already used for another "
            "request: use a new random id for every new batch"
        )
    data = json.loads(row[2])
    if data.get("v") == _FORMAT:
        records = _still_written(db, identity_id, dataset, data["sync_count"], data["keys"])
    else:
        records = tuple(record_from_json(r) for r in data["records"])
    return DatasetChange(
        identity_id, data["dataset"], data["sync_count"], data["deleted"], records, applied=False
    )


def _still_written(
    db: sqlite3.Connection, identity_id: str, dataset: str, sync_count: int, keys: Sequence[str]
) -> tuple[Record, ...]:
    """The records a push wrote that no later batch replaced, in the push's key order."""
    found: dict[str, Record] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = list(keys[start : start + _CHUNK])
        marks = ",".join("?" * len(chunk))
        for key, value, count, modified, by, device in db.execute(
            "SELECT key, value, sync_count, last_modified_date, last_modified_by, "
            "device_last_modified_date FROM records WHERE identity_id=? AND dataset=? "
            f"AND sync_count=? AND key IN ({marks})",
            (identity_id, dataset, sync_count, *chunk),
        ):
            found[key] = Record(key, value, count, from_ms(modified), by, from_ms(device))
    return tuple(found[k] for k in keys if k in found)


def remember_request(
    db: sqlite3.Connection,
    change: DatasetChange,
    client_request_id: str,
    kind: str,
    at: datetime,
    *,
    keep: int,
    max_age_ms: int,
) -> None:
    """Store what a replay of a request id needs, then drop memos past the bounds.

    Inside the caller's transaction. ``keep``: ids kept per dataset (this one included);
    ``max_age_ms``: the age past which ids are dropped (0: no age bound).
    """
    memo = {
        "v": _FORMAT,
        "dataset": change.dataset_name,
        "sync_count": change.sync_count,
        "deleted": change.deleted,
        "keys": [r.key for r in change.records],
    }
    where = "identity_id=? AND dataset=?"
    scope = (change.identity_id, change.dataset_name)
    (last,) = db.execute(f"SELECT MAX(seq) FROM requests WHERE {where}", scope).fetchone()
    seq = (last or 0) + 1
    now = to_ms(at)
    db.execute(
        "INSERT INTO requests (identity_id, client_request_id, kind, dataset, result, created, "
        "seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            *scope[:1],
            client_request_id,
            kind,
            change.dataset_name,
            json.dumps(memo, separators=(",", ":"), ensure_ascii=False),
            now,
            seq,
        ),
    )
    db.execute(f"DELETE FROM requests WHERE {where} AND seq<=?", (*scope, seq - keep))
    if seq >= keep:  # memos of older releases (no seq) count as the oldest
        db.execute(f"DELETE FROM requests WHERE {where} AND seq IS NULL", scope)
    if max_age_ms and now is not None:
        db.execute("DELETE FROM requests WHERE created<?", (now - max_age_ms,))
