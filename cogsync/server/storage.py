"""`ServerStorage`: the datasets, records, request ids and change log of `cogsync serve`.

One SQLite file (WAL, ``synchronous=FULL``) holds every identity's data; `ServerStorage` is
its only writer, and builds or upgrades it with the named migrations of
`cogsync.server.migrations`. Each write is one ``BEGIN IMMEDIATE`` transaction that
validates everything first and either applies the whole batch or raises and changes
nothing. The store is blocking and thread-safe (one lock, one connection); async code runs
it on a single worker thread.

Design rules:

* A dataset's ``sync_count`` grows by one per accepted batch; every record the batch
  writes carries the new count. Removed records and deleted datasets stay as tombstones.
* A push is accepted only if every patch names the record's current sync count (0 for a
  record never written; 0 is also accepted for a tombstone). Otherwise nothing is applied
  and `ConflictError` names the first stale key.
* A client request id seen before returns the stored result of its first application, within
  the replay bounds (`cogsync.server.requests_log`); the change log keeps its retention.
* Limits are checked with the functions of `cogsync.limits`, the same ones the client uses.
* Every applied change is appended to the change log (`cogsync.server.changes`).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from cogsync.exceptions import ConfigError
from cogsync.limits import (
    DEFAULT_LIMITS,
    RECORD_SIZE_SQL,
    Limits,
    check_dataset_count,
    check_dataset_sizes,
    check_dataset_totals,
    merged_dataset_name,
    validate_name,
)
from cogsync.models import PROTOCOL_VERSION, Record, RecordPage, RecordPatch, RemoteDataset, utcnow
from cogsync.server.batches import check_sync_count, validated_batch
from cogsync.server.bounds import DEFAULT_SERVER_LIMITS, ServerLimits
from cogsync.server.changes import (
    ChangeEntry,
    DatasetChange,
    append_change,
    prune_change_log,
    read_change_log,
)
from cogsync.server.hooks import SyncTrigger
from cogsync.server.migrations import SYNC_MIGRATIONS, migrate
from cogsync.server.paging import (
    DATASET_PAGE_SIZE,
    RECORD_PAGE_SIZE,
    bad_token,
    check_id,
    decode_token,
    encode_token,
    page_limit,
    record_position,
)
from cogsync.server.record_pages import page_rows
from cogsync.server.requests_log import recall_request, remember_request
from cogsync.server.rows import (
    RecordRow,
    from_ms,
    record_row,
    to_ms,
)
from cogsync.server.transactions import Transactions
from cogsync.server.wire import InvalidRequestError
from cogsync.sqlite_many import insert_many

__all__ = [
    "DATASET_PAGE_SIZE",
    "RECORD_PAGE_SIZE",
    "ChangeEntry",
    "DatasetChange",
    "DatasetListing",
    "ImportResult",
    "InvalidRequestError",
    "ServerStorage",
]

_MERGED_RE = re.compile(r"(?P<base>.+)\.(?P<source>[\w-]+:[0-9a-f-]+)")


@dataclass(frozen=True, slots=True)
class DatasetListing:
    """One page of an identity's datasets, deleted ones included."""

    datasets: tuple[RemoteDataset, ...]
    next_token: str | None


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What one import did: the dataset's sync count after it and the records written."""

    sync_count: int
    written: int
    applied: bool


class ServerStorage:
    """Every identity's datasets in one SQLite file; see the module docstring for the rules.

    Args:
        path: the SQLite file (created if absent).
        limits: the limits to enforce (announced to clients by serverInfo).
        clock: the source of server timestamps (aware UTC).
        retention: the replay-memo and change-log bounds (``replay_requests``,
            ``replay_max_age``, ``change_log_max_age``).

    Raises:
        ConfigError: the file is not a cogsync data file (or cannot be opened).
    """

    def __init__(
        self,
        path: Path,
        limits: Limits = DEFAULT_LIMITS,
        *,
        clock: Callable[[], datetime] = utcnow,
        retention: ServerLimits = DEFAULT_SERVER_LIMITS,
    ) -> None:
        self.path = Path(path)
        self.limits, self.retention = limits, retention
        self._clock = clock
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open data file {self.path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            migrate(self._db, SYNC_MIGRATIONS, f"data file {self.path}")
        except sqlite3.Error as exc:
            self._db.close()
            raise ConfigError(f"cannot open data file {self.path}: {exc}") from exc
        except BaseException:
            self._db.close()
            raise
        self._transactions = Transactions(self._db, self._lock)

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> ServerStorage:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def group(self) -> AbstractContextManager[None]:
        """Writes made inside share one transaction and one commit (`GroupCommitThread`);
        each is a savepoint, rolled back alone if it fails."""
        return self._transactions.group()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._transactions.write()

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
        check_id(client_request_id, "clientRequestId")
        check_id(device_id, "deviceId")
        if protocol_version != PROTOCOL_VERSION:
            raise InvalidRequestError(
                f"protocol version {protocol_version} is not spoken by this server (it speaks "
                f"{PROTOCOL_VERSION}): use a cogsync release matching the server"
            )
        with self._transaction() as db:
            replay = recall_request(db, identity_id, client_request_id, "push", dataset_name)
            if replay is not None:
                return replay
            batch = list(patches)
            step = 1
            if trigger is not None:
                batch = list(trigger(identity_id, dataset_name, list(patches)))
                step = 1 if batch == list(patches) else 2
            changes = validated_batch(batch, self.limits)
            row = self._dataset_row(identity_id, dataset_name)
            # Sizes, not values: SQLite measures them without handing the values to Python.
            current = {
                key: (size, count)
                for key, size, count in db.execute(
                    f"SELECT key, {RECORD_SIZE_SQL}, sync_count FROM records "
                    "WHERE identity_id=? AND dataset=?",
                    (identity_id, dataset_name),
                )
            }
            for patch in changes.values():
                check_sync_count(dataset_name, patch, current.get(patch.key))
            if row is None or row[1]:
                check_dataset_count(self._live_dataset_count(identity_id) + 1, self.limits)
            record_count, size = check_dataset_sizes(
                dataset_name,
                {k: v for k, (v, _) in current.items() if v is not None},
                {k: p.value for k, p in changes.items()},
                self.limits,
            )
            sync_count = (row[0] if row else 0) + step
            now = self._clock()
            written = tuple(
                Record(p.key, p.value, sync_count, now, device_id, p.device_last_modified_date)
                for p in changes.values()
            )
            insert_many(
                db,
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(identity_id, dataset_name, *record_row(r)) for r in written],
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
        check_id(client_request_id, "clientRequestId")
        with self._transaction() as db:
            replay = recall_request(db, identity_id, client_request_id, "delete", dataset_name)
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
                (sync_count, to_ms(now), identity_id, dataset_name),
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
        append_change(self._db, change, None, now, keys, keep_keys=self.retention.change_log_keys)
        return change

    def import_dataset(
        self,
        identity_id: str,
        dataset_name: str,
        records: Sequence[Record],
        *,
        sync_count: int,
        deleted: bool = False,
        now: datetime | None = None,
    ) -> ImportResult:
        """Write one dataset of an identity as another system held it (``cogsync migrate``).

        ``records`` keep their keys, values (None = tombstone), sync counts, and last modified
        date/by and device dates (a record without a last modified date gets ``now``); the
        caller has validated keys and values. One transaction, checked against the limits
        first, and idempotent: only records that differ are written. Records keep their own
        sync counts while the dataset was written by imports only; if devices pushed to it
        here since (its sync count is above ``sync_count``), changed records get a new sync
        count instead so every device still pulls them. ``deleted`` turns the dataset into a
        tombstone. A dataset named ``<name>.<identity id>`` is listed as merged into ``<name>``.

        Raises:
            InvalidNameError: a bad dataset name.
            LimitExceededError: the dataset would break the limits; nothing written.
        """
        validate_name(dataset_name, self.limits)
        if deleted:
            request_id = f"cogsync-migrate:{dataset_name}:{sync_count}"
            change = self.delete_dataset(identity_id, dataset_name, client_request_id=request_id)
            return ImportResult(change.sync_count, len(change.records), applied=change.applied)
        when = self._clock() if now is None else now
        incoming = {
            r.key: record_row(r if r.last_modified_date else replace(r, last_modified_date=when))
            for r in records
        }
        with self._transaction() as db:
            row = self._dataset_row(identity_id, dataset_name)
            stored: dict[str, RecordRow] = {
                r[0]: r
                for r in db.execute(
                    "SELECT key, value, sync_count, last_modified_date, last_modified_by, "
                    "device_last_modified_date FROM records WHERE identity_id=? AND dataset=?",
                    (identity_id, dataset_name),
                )
            }
            current = row[0] if row else 0
            moved_on = current > sync_count  # devices pushed here since the last import
            changed = [r for k, r in incoming.items() if _differs(stored.get(k), r, moved_on)]
            top = max([sync_count, *(r[2] for r in incoming.values())])
            if not changed and (row is None or not row[1]) and top <= current:
                return ImportResult(current, 0, applied=False)
            if row is None or row[1]:
                check_dataset_count(self._live_dataset_count(identity_id) + 1, self.limits)
            record_count, size = check_dataset_totals(
                dataset_name,
                {k: r[1] for k, r in stored.items()},
                {r[0]: r[1] for r in changed},
                self.limits,
            )
            if moved_on:  # stamp changes with a new count so every device pulls them
                new_count = current + (1 if changed else 0)
                changed = [(r[0], r[1], new_count, *r[3:]) for r in changed]
            else:
                new_count = top
            insert_many(
                db,
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(identity_id, dataset_name, *r) for r in changed],
            )
            merged = _MERGED_RE.fullmatch(dataset_name)
            base = merged.group("base") if merged else None
            self._save_dataset(
                identity_id, dataset_name, new_count, size, record_count, when, merged_into=base
            )
            if changed:
                change = DatasetChange(identity_id, dataset_name, new_count, False)
                keys = [r[0] for r in changed]
                append_change(
                    db, change, None, when, keys, keep_keys=self.retention.change_log_keys
                )
            return ImportResult(new_count, len(changed), applied=True)

    # -- reads ----------------------------------------------------------------------------

    def list_datasets(
        self, identity_id: str, *, next_token: str | None = None, limit: int | None = None
    ) -> DatasetListing:
        """One page of the identity's datasets by name, deleted ones (tombstones) included."""
        size = page_limit(limit, DATASET_PAGE_SIZE)
        after = ""
        if next_token is not None:
            data = decode_token(next_token, "listDatasets")
            if not isinstance(data.get("n"), str):
                raise bad_token("listDatasets")
            after = data["n"]
        with self._lock:
            rows = self._db.execute(
                "SELECT name, sync_count, size_in_bytes, record_count, last_modified, deleted "
                "FROM datasets WHERE identity_id=? AND name>? ORDER BY name LIMIT ?",
                (identity_id, after, size + 1),
            ).fetchall()
        datasets = tuple(
            RemoteDataset(name, count, nbytes, records, from_ms(modified), bool(deleted))
            for name, count, nbytes, records, modified, deleted in rows[:size]
        )
        token = encode_token({"v": 1, "n": datasets[-1].name}) if len(rows) > size else None
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
        size = page_limit(limit, RECORD_PAGE_SIZE)
        with self._transaction() as db:
            row = self._dataset_row(identity_id, dataset_name)
            current, deleted = (row[0], bool(row[1])) if row else (0, False)
            up_to, position = current, (last_sync_count, "")
            if next_token is not None:
                up_to, position = record_position(
                    next_token, dataset_name, last_sync_count, current
                )
            rows = page_rows(
                db, identity_id, dataset_name, last_sync_count, up_to, position, size + 1
            )
            merged = tuple(
                name
                for (name,) in db.execute(
                    "SELECT name FROM datasets WHERE identity_id=? AND merged_into=? "
                    "AND deleted=0 ORDER BY name",
                    (identity_id, dataset_name),
                )
            )
        records = tuple(
            Record(key, value, count, from_ms(modified), by, from_ms(device))
            for key, value, count, modified, by, device in rows[:size]
        )
        token = None
        if len(rows) > size:
            last = records[-1]
            token = encode_token(
                {"v": 1, "d": dataset_name, "l": last_sync_count, "u": up_to}
                | {"s": last.sync_count, "k": last.key}
            )
        return RecordPage(dataset_name, up_to, deleted, records, token, merged)

    def read_changes(self, after_seq: int = 0, limit: int = 1000) -> list[ChangeEntry]:
        """The change log after sequence number ``after_seq``, oldest first, at most ``limit``."""
        with self._lock:
            return read_change_log(self._db, after_seq, limit)

    # -- internals ------------------------------------------------------------------------

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
                to_ms(now),
                int(deleted),
                merged_into,
            ),
        )

    def _remember(
        self,
        change: DatasetChange,
        client_request_id: str,
        kind: str,
        now: datetime | None,
        keys: Sequence[str] | None = None,
    ) -> None:
        at, retention = now or self._clock(), self.retention
        remember_request(
            self._db,
            change,
            client_request_id,
            kind,
            at,
            keep=retention.replay_requests,
            max_age_ms=round(retention.replay_max_age * 1000),
        )
        if now is not None:
            if keys is None:
                keys = [r.key for r in change.records]
            append_change(
                self._db, change, client_request_id, now, keys, keep_keys=retention.change_log_keys
            )
        if retention.change_log_max_age:
            prune_change_log(
                self._db, (to_ms(at) or 0) - round(retention.change_log_max_age * 1000)
            )


def _differs(stored: RecordRow | None, incoming: RecordRow, moved_on: bool) -> bool:
    if stored is None:
        return True
    if moved_on:  # sync counts were restamped here; compare the data only
        return stored[:2] != incoming[:2] or stored[3:] != incoming[3:]
    return stored != incoming
