"""`ServerStorage`: the datasets, records, request ids and change log of `cogsync serve`.

One SQLite file (WAL, ``synchronous=FULL``) holds every identity's data. Each write is one
``BEGIN IMMEDIATE`` transaction that validates everything first and either applies the
whole batch or raises and changes nothing. The store is blocking and thread-safe (one
lock, one connection); async code runs it on a single worker thread.

Design rules:

* A dataset's ``sync_count`` grows by one per accepted batch; every record the batch
  writes carries the new count. Removed records and deleted datasets stay as tombstones.
* A push is accepted only if every patch names the record's current sync count (0 for a
  record never written; 0 is also accepted for a tombstone). Otherwise nothing is applied
  and `ConflictError` names the first stale key.
* A client request id seen before returns the stored result of its first application.
* Limits are checked with the functions of `cogsync.limits`, the same ones the client uses.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cogsync.exceptions import ConflictError, InvalidValueError, UsageError
from cogsync.limits import (
    DEFAULT_LIMITS,
    Limits,
    check_dataset_count,
    check_dataset_totals,
    merged_dataset_name,
    validate_key,
    validate_name,
    validate_value,
)
from cogsync.models import (
    PROTOCOL_VERSION,
    PatchOp,
    Record,
    RecordPage,
    RecordPatch,
    RemoteDataset,
    utcnow,
)
from cogsync.server.hooks import SyncTrigger

__all__ = [
    "DATASET_PAGE_SIZE",
    "RECORD_PAGE_SIZE",
    "ChangeEntry",
    "DatasetChange",
    "DatasetListing",
    "InvalidRequestError",
    "ServerStorage",
]

RECORD_PAGE_SIZE = 1024
"""Default and largest number of records in one listRecords page."""
DATASET_PAGE_SIZE = 100
"""Default and largest number of datasets in one listDatasets page."""
_MAX_ID_LENGTH = 256
_MAX_TOKEN_LENGTH = 4096

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    identity_id TEXT NOT NULL, name TEXT NOT NULL, sync_count INTEGER NOT NULL,
    size_in_bytes INTEGER NOT NULL, record_count INTEGER NOT NULL, last_modified INTEGER,
    deleted INTEGER NOT NULL DEFAULT 0, merged_into TEXT,
    PRIMARY KEY (identity_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    identity_id TEXT NOT NULL, dataset TEXT NOT NULL, key TEXT NOT NULL, value TEXT,
    sync_count INTEGER NOT NULL, last_modified_date INTEGER NOT NULL, last_modified_by TEXT,
    device_last_modified_date INTEGER,
    PRIMARY KEY (identity_id, dataset, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_by_sync_count
    ON records (identity_id, dataset, sync_count, key);
CREATE TABLE IF NOT EXISTS requests (
    identity_id TEXT NOT NULL, client_request_id TEXT NOT NULL, kind TEXT NOT NULL,
    dataset TEXT NOT NULL, result TEXT NOT NULL, created INTEGER NOT NULL,
    PRIMARY KEY (identity_id, client_request_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS change_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, identity_id TEXT NOT NULL, dataset TEXT NOT NULL,
    sync_count INTEGER NOT NULL, deleted INTEGER NOT NULL, keys TEXT NOT NULL,
    client_request_id TEXT, time INTEGER NOT NULL
);
"""


class InvalidRequestError(UsageError):
    """A request parameter is wrong: page token, page limit, sync count, request id or version."""


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
class DatasetListing:
    """One page of an identity's datasets, deleted ones included."""

    datasets: tuple[RemoteDataset, ...]
    next_token: str | None


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
        """This entry as a JSON-ready dict (times as ISO-8601 UTC)."""
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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def _ms(value: datetime | None) -> int | None:
    return None if value is None else (value - _EPOCH) // _MILLISECOND


def _dt(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + value * _MILLISECOND


def _record_row(r: Record) -> tuple[Any, ...]:
    modified, device = _ms(r.last_modified_date), _ms(r.device_last_modified_date)
    return (r.key, r.value, r.sync_count, modified, r.last_modified_by, device)


def _record_json(record: Record) -> dict[str, Any]:
    return {
        "key": record.key,
        "value": record.value,
        "sync_count": record.sync_count,
        "last_modified_date": _ms(record.last_modified_date),
        "last_modified_by": record.last_modified_by,
        "device_last_modified_date": _ms(record.device_last_modified_date),
    }


def _change_from_json(identity_id: str, data: dict[str, Any]) -> DatasetChange:
    records = tuple(
        Record(
            key=r["key"],
            value=r["value"],
            sync_count=r["sync_count"],
            last_modified_date=_dt(r["last_modified_date"]),
            last_modified_by=r["last_modified_by"],
            device_last_modified_date=_dt(r["device_last_modified_date"]),
        )
        for r in data["records"]
    )
    return DatasetChange(
        identity_id, data["dataset"], data["sync_count"], data["deleted"], records, applied=False
    )


def _encode_token(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _bad_token(what: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"invalid nextToken for {what}: pass the nextToken of the previous page unchanged "
        "(with the same other arguments), or omit it to start from the first page"
    )


def _decode_token(token: object, what: str) -> dict[str, Any]:
    problem = _bad_token(what)
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_LENGTH:
        raise problem
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise problem from exc
    if not isinstance(data, dict) or data.get("v") != 1:
        raise problem
    return data


def _page_limit(limit: int | None, largest: int) -> int:
    if limit is None:
        return largest
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidRequestError(f"limit must be a positive integer (at most {largest})")
    return min(limit, largest)


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_ID_LENGTH:
        raise InvalidRequestError(
            f"{what} must be a string of 1-{_MAX_ID_LENGTH} characters (a UUID is ideal)"
        )
    return value


class ServerStorage:
    """Every identity's datasets in one SQLite file; see the module docstring for the rules.

    Args:
        path: the SQLite file (created if absent).
        limits: the limits to enforce (announced to clients by serverInfo).
        clock: the source of server timestamps (aware UTC).
    """

    def __init__(
        self,
        path: Path,
        limits: Limits = DEFAULT_LIMITS,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.path = Path(path)
        self.limits = limits
        self._clock = clock
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> ServerStorage:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- writes ---------------------------------------------------------------------------

    def push_records(
        self,
        identity_id: str,
        dataset_name: str,
        patches: Sequence[RecordPatch],
        *,
        client_request_id: str,
        device_id: str,
        protocol_version: int = PROTOCOL_VERSION,
        trigger: SyncTrigger | None = None,
    ) -> DatasetChange:
        """Apply ``patches`` to a dataset all-or-nothing as one new sync count.

        ``trigger`` (the operator's sync trigger) sees the batch first and may modify or
        reject it. A batch the trigger modified takes the sync count after next: the
        pushing device then sees that another write came in between and pulls the batch
        back, learning the modified values. A ``client_request_id`` seen before returns the
        first result (``applied=False``) without applying anything.

        Raises:
            InvalidNameError, InvalidKeyError, InvalidValueError, InvalidRequestError: bad input.
            ConflictError: a patch's sync count is stale (key, current, expected).
            LimitExceededError: the result would break a limit.
            SyncRejected: the sync trigger refused the batch.
        """
        validate_name(dataset_name, self.limits)
        _check_id(client_request_id, "clientRequestId")
        _check_id(device_id, "deviceId")
        if protocol_version != PROTOCOL_VERSION:
            raise InvalidRequestError(
                f"protocol version {protocol_version} is not spoken by this server (it speaks "
                f"{PROTOCOL_VERSION}): use a cogsync release matching the server"
            )
        with self._transaction() as db:
            replay = self._replay(identity_id, client_request_id, "push", dataset_name)
            if replay is not None:
                return replay
            batch = list(patches)
            step = 1
            if trigger is not None:
                batch = list(trigger(identity_id, dataset_name, list(patches)))
                step = 1 if batch == list(patches) else 2
            changes = self._validated(batch)
            row = self._dataset_row(identity_id, dataset_name)
            current = {
                key: (value, count)
                for key, value, count in db.execute(
                    "SELECT key, value, sync_count FROM records WHERE identity_id=? AND dataset=?",
                    (identity_id, dataset_name),
                )
            }
            for patch in changes.values():
                self._check_sync_count(dataset_name, patch, current.get(patch.key))
            if row is None or row[1]:
                check_dataset_count(self._live_dataset_count(identity_id) + 1, self.limits)
            record_count, size = check_dataset_totals(
                dataset_name,
                {k: v for k, (v, _) in current.items()},
                {k: p.value for k, p in changes.items()},
                self.limits,
            )
            sync_count = (row[0] if row else 0) + step
            now = self._clock()
            written = tuple(
                Record(p.key, p.value, sync_count, now, device_id, p.device_last_modified_date)
                for p in changes.values()
            )
            db.executemany(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(identity_id, dataset_name, *_record_row(r)) for r in written],
            )
            self._save_dataset(identity_id, dataset_name, sync_count, size, record_count, now)
            change = DatasetChange(identity_id, dataset_name, sync_count, False, written)
            self._remember(change, client_request_id, "push", now)
            return change

    def delete_dataset(
        self, identity_id: str, dataset_name: str, *, client_request_id: str
    ) -> DatasetChange:
        """Delete a dataset: keep it as a tombstone and turn every live record into one.

        Deleting an absent or already deleted dataset changes nothing (``applied=False``);
        a ``client_request_id`` seen before returns the first result.
        """
        validate_name(dataset_name, self.limits)
        _check_id(client_request_id, "clientRequestId")
        with self._transaction() as db:
            replay = self._replay(identity_id, client_request_id, "delete", dataset_name)
            if replay is not None:
                return replay
            row = self._dataset_row(identity_id, dataset_name)
            if row is None or row[1]:
                sync_count = row[0] if row else 0
                change = DatasetChange(identity_id, dataset_name, sync_count, True, applied=False)
                self._remember(change, client_request_id, "delete", None)
                return change
            sync_count = row[0] + 1
            now = self._clock()
            keys = self._live_keys(identity_id, dataset_name)
            db.execute(
                "UPDATE records SET value=NULL, sync_count=?, last_modified_date=?, "
                "last_modified_by=NULL, device_last_modified_date=NULL "
                "WHERE identity_id=? AND dataset=? AND value IS NOT NULL",
                (sync_count, _ms(now), identity_id, dataset_name),
            )
            self._save_dataset(identity_id, dataset_name, sync_count, 0, 0, now, deleted=True)
            change = DatasetChange(identity_id, dataset_name, sync_count, True)
            self._remember(change, client_request_id, "delete", now, keys)
            return change

    def merge_identity(
        self, source_identity_id: str, target_identity_id: str
    ) -> list[DatasetChange]:
        """Move every live dataset of ``source`` to ``target`` as ``<name>.<source>``.

        Cognito Sync's identity merge: nothing is dropped, the merged datasets count
        towards the target's dataset limit until the app reconciles and deletes them, and
        listRecords of ``<name>`` reports them in mergedDatasetNames. The source identity
        is left without data. Returns one change per merged dataset (to publish).
        """
        if source_identity_id == target_identity_id:
            raise InvalidRequestError("cannot merge an identity into itself")
        with self._transaction() as db:
            sources = db.execute(
                "SELECT name, sync_count FROM datasets WHERE identity_id=? AND deleted=0 "
                "ORDER BY name",
                (source_identity_id,),
            ).fetchall()
            changes = [
                self._merge_one(source_identity_id, target_identity_id, name, count)
                for name, count in sources
            ]
            db.execute("DELETE FROM records WHERE identity_id=?", (source_identity_id,))
            db.execute("DELETE FROM datasets WHERE identity_id=?", (source_identity_id,))
        return changes

    def _merge_one(self, source: str, target: str, name: str, count: int) -> DatasetChange:
        db, new_name = self._db, merged_dataset_name(name, source, self.limits)
        row = self._dataset_row(target, new_name)
        if row is not None and not row[1]:
            raise InvalidRequestError(
                f"identity {target} already holds dataset {new_name!r}: delete it before merging"
            )
        sync_count, now = max(count, row[0] if row else 0) + 1, self._clock()
        db.execute("DELETE FROM records WHERE identity_id=? AND dataset=?", (target, new_name))
        db.execute(
            "INSERT INTO records SELECT ?, ?, key, value, ?, last_modified_date, "
            "last_modified_by, device_last_modified_date FROM records "
            "WHERE identity_id=? AND dataset=? AND value IS NOT NULL",
            (target, new_name, sync_count, source, name),
        )
        keys = self._live_keys(target, new_name)
        size, record_count = db.execute(
            "SELECT size_in_bytes, record_count FROM datasets WHERE identity_id=? AND name=?",
            (source, name),
        ).fetchone()
        self._save_dataset(target, new_name, sync_count, size, record_count, now, merged_into=name)
        change = DatasetChange(target, new_name, sync_count, False)
        self._log(change, None, now, keys)
        return change

    # -- reads ----------------------------------------------------------------------------

    def list_datasets(
        self, identity_id: str, *, next_token: str | None = None, limit: int | None = None
    ) -> DatasetListing:
        """One page of the identity's datasets by name, deleted ones (tombstones) included."""
        size = _page_limit(limit, DATASET_PAGE_SIZE)
        after = ""
        if next_token is not None:
            data = _decode_token(next_token, "listDatasets")
            if not isinstance(data.get("n"), str):
                raise _bad_token("listDatasets")
            after = data["n"]
        with self._lock:
            rows = self._db.execute(
                "SELECT name, sync_count, size_in_bytes, record_count, last_modified, deleted "
                "FROM datasets WHERE identity_id=? AND name>? ORDER BY name LIMIT ?",
                (identity_id, after, size + 1),
            ).fetchall()
        datasets = tuple(
            RemoteDataset(name, count, nbytes, records, _dt(modified), bool(deleted))
            for name, count, nbytes, records, modified, deleted in rows[:size]
        )
        token = _encode_token({"v": 1, "n": datasets[-1].name}) if len(rows) > size else None
        return DatasetListing(datasets, token)

    def list_records(
        self,
        identity_id: str,
        dataset_name: str,
        last_sync_count: int,
        *,
        next_token: str | None = None,
        limit: int | None = None,
    ) -> RecordPage:
        """One page of records with ``last_sync_count < sync_count <= upTo``, by (count, key).

        ``upTo`` is the dataset's sync count when the first page was read; later pages keep
        it (it travels in ``next_token``) and report it as the page's ``sync_count``, so a
        client that next pulls from that count misses nothing written in between.
        """
        validate_name(dataset_name, self.limits)
        if isinstance(last_sync_count, bool) or not isinstance(last_sync_count, int):
            raise InvalidRequestError("lastSyncCount must be an integer")
        if last_sync_count < 0:
            raise InvalidRequestError("lastSyncCount must be 0 (everything) or more")
        size = _page_limit(limit, RECORD_PAGE_SIZE)
        with self._transaction() as db:
            row = self._dataset_row(identity_id, dataset_name)
            current, deleted = (row[0], bool(row[1])) if row else (0, False)
            up_to, position = current, (last_sync_count, "")
            if next_token is not None:
                up_to, position = self._record_position(
                    next_token, dataset_name, last_sync_count, current
                )
            rows = db.execute(
                "SELECT key, value, sync_count, last_modified_date, last_modified_by, "
                "device_last_modified_date FROM records WHERE identity_id=? AND dataset=? "
                "AND sync_count>? AND sync_count<=? AND (sync_count, key) > (?, ?) "
                "ORDER BY sync_count, key LIMIT ?",
                (identity_id, dataset_name, last_sync_count, up_to, *position, size + 1),
            ).fetchall()
            merged = tuple(
                name
                for (name,) in db.execute(
                    "SELECT name FROM datasets WHERE identity_id=? AND merged_into=? "
                    "AND deleted=0 ORDER BY name",
                    (identity_id, dataset_name),
                )
            )
        records = tuple(
            Record(key, value, count, _dt(modified), by, _dt(device))
            for key, value, count, modified, by, device in rows[:size]
        )
        token = None
        if len(rows) > size:
            last = records[-1]
            token = _encode_token(
                {"v": 1, "d": dataset_name, "l": last_sync_count, "u": up_to}
                | {"s": last.sync_count, "k": last.key}
            )
        return RecordPage(dataset_name, up_to, deleted, records, token, merged)

    def read_changes(self, after_seq: int = 0, limit: int = 1000) -> list[ChangeEntry]:
        """The change log after sequence number ``after_seq``, oldest first, at most ``limit``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, identity_id, dataset, sync_count, deleted, keys, client_request_id, "
                "time FROM change_log WHERE seq>? ORDER BY seq LIMIT ?",
                (after_seq, max(0, limit)),
            ).fetchall()
        return [
            ChangeEntry(seq, ident, name, count, bool(deleted), tuple(json.loads(keys)), req, t)
            for seq, ident, name, count, deleted, keys, req, ms in rows
            if (t := _dt(ms)) is not None
        ]

    # -- internals ------------------------------------------------------------------------

    def _record_position(
        self, token: str, dataset_name: str, last_sync_count: int, current: int
    ) -> tuple[int, tuple[int, str]]:
        data = _decode_token(token, f"listRecords of {dataset_name!r}")
        up_to, count, key = data.get("u"), data.get("s"), data.get("k")
        valid = (
            data.get("d") == dataset_name
            and data.get("l") == last_sync_count
            and all(isinstance(v, int) and not isinstance(v, bool) for v in (up_to, count))
            and isinstance(key, str)
        )
        if not valid or not last_sync_count < count <= up_to <= current:  # type: ignore[operator]
            raise _bad_token(f"listRecords of {dataset_name!r}")
        return up_to, (count, key)  # type: ignore[return-value]

    def _validated(self, batch: list[RecordPatch]) -> dict[str, RecordPatch]:
        changes: dict[str, RecordPatch] = {}
        for patch in batch:
            if not isinstance(patch, RecordPatch):
                raise TypeError(f"a sync trigger returned {type(patch).__name__}, not RecordPatch")
            key = validate_key(patch.key, self.limits)
            if key in changes:
                raise InvalidRequestError(
                    f"record key {key[:40]!r} appears twice in one push: send one patch per key"
                )
            if isinstance(patch.sync_count, bool) or not isinstance(patch.sync_count, int):
                raise InvalidRequestError(f"syncCount of record {key[:40]!r} must be an integer")
            if patch.sync_count < 0:
                raise InvalidRequestError(
                    f"syncCount of record {key[:40]!r} is negative: send 0 for a new record"
                )
            if PatchOp(patch.op) is PatchOp.REMOVE:
                patch = RecordPatch(
                    PatchOp.REMOVE, key, None, patch.sync_count, patch.device_last_modified_date
                )
            elif patch.value is None:
                raise InvalidValueError(
                    f"REPLACE of record {key[:40]!r} has no value: send a string, or use REMOVE"
                )
            else:
                validate_value(patch.value)
            changes[key] = patch
        return changes

    @staticmethod
    def _check_sync_count(
        name: str, patch: RecordPatch, stored: tuple[str | None, int] | None
    ) -> None:
        current = 0 if stored is None else stored[1]
        if patch.sync_count == current:
            return
        if stored is not None and stored[0] is None and patch.sync_count == 0:
            return  # writing over a tombstone as a new record
        raise ConflictError(
            f"record {patch.key[:40]!r} of dataset {name!r} is at syncCount {current} on the "
            f"server but the push expected {patch.sync_count}; nothing was applied: pull the "
            "dataset, resolve the conflict and push again",
            key=patch.key,
            current=current,
            expected=patch.sync_count,
        )

    def _dataset_row(self, identity_id: str, name: str) -> tuple[int, int] | None:
        row = self._db.execute(
            "SELECT sync_count, deleted FROM datasets WHERE identity_id=? AND name=?",
            (identity_id, name),
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def _live_keys(self, identity_id: str, name: str) -> list[str]:
        sql = "SELECT key FROM records WHERE identity_id=? AND dataset=? AND value IS NOT NULL"
        return [key for (key,) in self._db.execute(sql + " ORDER BY key", (identity_id, name))]

    def _live_dataset_count(self, identity_id: str) -> int:
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM datasets WHERE identity_id=? AND deleted=0", (identity_id,)
        ).fetchone()
        return int(count)

    def _save_dataset(
        self,
        identity_id: str,
        name: str,
        sync_count: int,
        size: int,
        record_count: int,
        now: datetime,
        *,
        deleted: bool = False,
        merged_into: str | None = None,
    ) -> None:
        self._db.execute(
            "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (identity_id, name) DO UPDATE SET sync_count=excluded.sync_count, "
            "size_in_bytes=excluded.size_in_bytes, record_count=excluded.record_count, "
            "last_modified=excluded.last_modified, deleted=excluded.deleted, "
            "merged_into=COALESCE(excluded.merged_into, datasets.merged_into)",
            (
                identity_id,
                name,
                sync_count,
                size,
                record_count,
                _ms(now),
                int(deleted),
                merged_into,
            ),
        )

    def _replay(
        self, identity_id: str, client_request_id: str, kind: str, dataset_name: str
    ) -> DatasetChange | None:
        row = self._db.execute(
            "SELECT kind, dataset, result FROM requests "
            "WHERE identity_id=? AND client_request_id=?",
            (identity_id, client_request_id),
        ).fetchone()
        if row is None:
            return None
        if (row[0], row[1]) != (kind, dataset_name):
            raise InvalidRequestError(
                f"clientRequestId {client_request_id[:64]!r} was already used for another "
                "request: use a new random id for every new batch"
            )
        return _change_from_json(identity_id, json.loads(row[2]))

    def _remember(
        self,
        change: DatasetChange,
        client_request_id: str,
        kind: str,
        now: datetime | None,
        keys: Sequence[str] | None = None,
    ) -> None:
        result = {
            "dataset": change.dataset_name,
            "sync_count": change.sync_count,
            "deleted": change.deleted,
            "records": [_record_json(r) for r in change.records],
        }
        self._db.execute(
            "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?)",
            (
                change.identity_id,
                client_request_id,
                kind,
                change.dataset_name,
                json.dumps(result, separators=(",", ":")),
                _ms(now or self._clock()),
            ),
        )
        if now is not None:
            if keys is None:
                keys = [r.key for r in change.records]
            self._log(change, client_request_id, now, keys)

    def _log(
        self,
        change: DatasetChange,
        client_request_id: str | None,
        now: datetime,
        keys: Sequence[str],
    ) -> None:
        self._db.execute(
            "INSERT INTO change_log (identity_id, dataset, sync_count, deleted, keys, "
            "client_request_id, time) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                change.identity_id,
                change.dataset_name,
                change.sync_count,
                int(change.deleted),
                json.dumps(list(keys), ensure_ascii=False),
                client_request_id,
                _ms(now),
            ),
        )
