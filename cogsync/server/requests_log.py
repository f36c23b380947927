"""The remembered results of client request ids (the data file's ``requests`` table).

A push or deletion carries a client request id; its result is stored with it in the same
transaction, so a retry of the request (the answer was lost) gets the first result back
instead of applying the batch twice. An id reused for another request is refused.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from cogsync.server.changes import DatasetChange
from cogsync.server.rows import record_from_json, record_json, to_ms
from cogsync.server.wire import InvalidRequestError

__all__ = ["recall_request", "remember_request"]


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
    records = tuple(record_from_json(r) for r in data["records"])
    return DatasetChange(
        identity_id, data["dataset"], data["sync_count"], data["deleted"], records, applied=False
    )


def remember_request(
    db: sqlite3.Connection, change: DatasetChange, client_request_id: str, kind: str, at: datetime
) -> None:
    """Store the result of a request id (inside the caller's transaction)."""
    result = {
        "dataset": change.dataset_name,
        "sync_count": change.sync_count,
        "deleted": change.deleted,
        "records": [record_json(r) for r in change.records],
    }
    db.execute(
        "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?)",
        (
            change.identity_id,
            client_request_id,
            kind,
            change.dataset_name,
            json.dumps(result, separators=(",", ":")),
            to_ms(at),
        ),
    )
