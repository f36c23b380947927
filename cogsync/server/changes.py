"""The change log of `cogsync serve` and its export, the change stream.

Every applied batch (push, deletion, merge, import) appends one entry to the data file's
``change_log`` table in the same transaction, in commit order (``seq``). Other systems
follow it with `export_changes_jsonl` (the successor of Cognito Streams), which reads
through `ServerStorage.read_changes`.

An entry holds the batch's keys, never values. Two bounds drop entries as later batches are
written, like a stream's retention (`cogsync.server.bounds.ServerLimits`): entries older
than ``change_log_max_age`` (30 days by default; 0 keeps them forever, `prune_change_log`),
and, per dataset, the oldest entries past ``change_log_keys`` logged keys (10,000 by
default, an entry counting at least 1; 0: no bound, `append_change`). So a dataset's share
of the log stays below about 60 bytes x 10,000 plus 10,000 of its keys however often it is
rewritten, and a follower must export more often than either bound is reached.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TextIO

from cogsync.models import Record
from cogsync.server.rows import from_ms, to_ms

__all__ = [
    "ChangeEntry",
    "ChangeSource",
    "DatasetChange",
    "append_change",
    "export_changes_jsonl",
    "prune_change_log",
    "read_change_log",
]


@dataclass(frozen=True, slots=True)
class DatasetChange:
    """The outcome of a push or deletion (what pushRecords/deleteDataset return).

    Attributes:
        records: the records the batch wrote (empty for a deletion).
        applied: False when nothing was written: a retried request id, or deleting a
            dataset that is absent or already deleted. Only applied changes are published.
    """

    identity_id: str
    dataset_name: str
    sync_count: int
    deleted: bool
    records: tuple[Record, ...] = ()
    applied: bool = True


@dataclass(frozen=True, slots=True)
class ChangeEntry:
    """One accepted batch in the change log, in commit order (``seq``)."""

    seq: int
    identity_id: str
    dataset_name: str
    sync_count: int
    deleted: bool
    keys: tuple[str, ...]
    client_request_id: str | None
    time: datetime

    def to_json(self) -> dict[str, Any]:
        """This entry as a JSON-ready dict (times as ISO-8601 UTC with ``+00:00``)."""
        return {
            "seq": self.seq,
            "identityId": self.identity_id,
            "datasetName": self.dataset_name,
            "syncCount": self.sync_count,
            "deleted": self.deleted,
            "keys": list(self.keys),
            "clientRequestId": self.client_request_id,
            "time": self.time.isoformat(timespec="milliseconds"),
        }


def append_change(
    db: sqlite3.Connection,
    change: DatasetChange,
    client_request_id: str | None,
    now: datetime,
    keys: Sequence[str],
    *,
    keep_keys: int = 0,
) -> None:
    """Log an applied change (inside the caller's transaction); with ``keep_keys``, then
    drop the dataset's oldest entries so that it keeps at most that many logged keys."""
    where = (change.identity_id, change.dataset_name)
    last = db.execute(
        "SELECT keys_total FROM change_log WHERE identity_id=? AND dataset=? "
        "ORDER BY keys_total DESC LIMIT 1",
        where,
    ).fetchone()
    total = (last[0] if last and last[0] is not None else 0) + max(1, len(keys))
    db.execute(
        "INSERT INTO change_log (identity_id, dataset, sync_count, deleted, keys, "
        "client_request_id, time, keys_total) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            *where,
            change.sync_count,
            int(change.deleted),
            json.dumps(list(keys), ensure_ascii=False),
            client_request_id,
            to_ms(now),
            total,
        ),
    )
    if keep_keys:
        db.execute(
            "DELETE FROM change_log WHERE identity_id=? AND dataset=? AND keys_total<=?",
            (*where, total - keep_keys),
        )


def prune_change_log(db: sqlite3.Connection, before_ms: int) -> None:
    """Drop the entries logged before ``before_ms`` (inside the caller's transaction)."""
    db.execute("DELETE FROM change_log WHERE time<?", (before_ms,))


def read_change_log(db: sqlite3.Connection, after_seq: int, limit: int) -> list[ChangeEntry]:
    """The entries after ``after_seq``, oldest first, at most ``limit``."""
    rows = db.execute(
        "SELECT seq, identity_id, dataset, sync_count, deleted, keys, client_request_id, "
        "time FROM change_log WHERE seq>? ORDER BY seq LIMIT ?",
        (after_seq, max(0, limit)),
    ).fetchall()
    return [
        ChangeEntry(seq, ident, name, count, bool(deleted), tuple(json.loads(keys)), req, t)
        for seq, ident, name, count, deleted, keys, req, ms in rows
        if (t := from_ms(ms)) is not None
    ]


class ChangeSource(Protocol):
    """Where the change stream reads from (`ServerStorage`)."""

    def read_changes(self, after_seq: int = 0, limit: int = 1000) -> list[ChangeEntry]:
        """The change log after ``after_seq``, oldest first, at most ``limit``."""
        ...


def export_changes_jsonl(
    storage: ChangeSource, out: TextIO, *, after_seq: int = 0, batch: int = 1000
) -> int:
    """Write every change after ``after_seq`` to ``out``, one JSON object a line.

    Returns the sequence number of the last change written (``after_seq`` if none), to be
    passed as ``after_seq`` next time to continue where this export stopped.
    """
    last = after_seq
    while True:
        changes = storage.read_changes(after_seq=last, limit=batch)
        for change in changes:
            out.write(json.dumps(change.to_json(), separators=(",", ":")) + "\n")
            last = change.seq
        if len(changes) < batch:
            return last
