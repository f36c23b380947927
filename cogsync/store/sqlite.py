"""`SQLiteStore`: a device's datasets in one SQLite file (WAL, every change durable on return).

Design rules:

- Every write method is one ``BEGIN IMMEDIATE`` transaction that reads what it needs,
  validates every limit and only then writes; a failure rolls everything back.
- ``synchronous=FULL``: when a write method returns, the change survives a crash.
- Several processes may share the file: writers queue on SQLite's busy timeout, and
  ``BEGIN IMMEDIATE`` is retried while the file stays locked, so "database is locked"
  never reaches the caller.
- One connection, guarded by a lock, usable from any single thread (the async client
  runs every call on one worker thread).
- Hot paths run prepared plain SQL; the schema is introspected only when opening.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from cogsync.exceptions import ConfigError, StorageCorruptError, UsageError
from cogsync.limits import (
    DEFAULT_LIMITS,
    Limits,
    check_dataset_count,
    check_dataset_totals,
    validate_key,
    validate_name,
    validate_value,
)
from cogsync.models import DatasetState, Record, RecordWrite, SyncWrites, record_rows
from cogsync.sqlite_many import execute_among, insert_many
from cogsync.store import owners
from cogsync.store import statements as sql
from cogsync.store.connection import BUSY_TIMEOUT_SECONDS, connect, retry_busy
from cogsync.store.errors import storage_error
from cogsync.store.memory import check_sync_writes, covered_sync_count
from cogsync.store.migrations import check_current, migrate
from cogsync.store.rows import SyncedRows, as_dataset, as_record, as_text

__all__ = ["BUSY_TIMEOUT_SECONDS", "SQLiteStore"]


_SCAN_FROM = 64  # batches larger than this read the whole dataset instead of binding keys


def _floor(conn: sqlite3.Connection) -> int:
    """The revision floor (`sql.SELECT_FLOOR`): new records start above it."""
    row = conn.execute(sql.SELECT_FLOOR).fetchone()
    return int(row[0]) if row else 0


def _retire(conn: sqlite3.Connection, revision: int | None) -> None:
    """Raise the revision floor to ``revision``, the highest of records being removed."""
    if revision:
        conn.execute(sql.RAISE_FLOOR, (revision,))


def _delete_records(conn: sqlite3.Connection, owner: str, name: str) -> None:
    """Delete a dataset's records, raising the revision floor past them."""
    _retire(conn, conn.execute(sql.MAX_REVISION, (owner, name)).fetchone()[0])
    conn.execute("DELETE FROM records WHERE owner = ? AND dataset = ?", (owner, name))


def _drop(conn: sqlite3.Connection, owner: str, name: str) -> None:
    _delete_records(conn, owner, name)
    conn.execute("DELETE FROM datasets WHERE owner = ? AND name = ?", (owner, name))


def _rows_among(
    conn: sqlite3.Connection,
    select: str,
    owner: str,
    name: str,
    keys: Collection[str] | None,
    order: str = "",
) -> list[Any]:
    """Rows of ``select`` (a dataset's rows, key first) for ``keys`` (None: all). Few keys
    are bound (not with json_each: it cuts strings at NUL characters); for many, one scan
    of the dataset filtered here is cheaper."""
    if keys is None or len(keys) > _SCAN_FROM:
        rows = conn.execute(select + order, (owner, name)).fetchall()
        if keys is None:
            return rows
        wanted = keys if isinstance(keys, set | frozenset) else set(keys)
        return [row for row in rows if row[0] in wanted]
    if not keys:
        return []
    marks = ", ".join("?" * len(keys))
    return conn.execute(f"{select} AND key IN ({marks}){order}", (owner, name, *keys)).fetchall()


class SQLiteStore:
    """A `LocalStore` kept in one SQLite file per device.

    Args:
        db_path: the file; created (with a new device id) if missing, upgraded if old.
        limits: the limits `write_local` and `create_dataset` enforce.
        device_id: the device id to record when the file is created (local writes are
            stamped with it); an existing file keeps its own.
        read_only: open an existing file without changing it (no upgrade; writes raise
            `UsageError`), as ``cogsync inspect`` does.

    Raises:
        ConfigError: the file is not a SQLite database, or a newer cogsync upgraded it, or
            (read-only) it is not a cogsync device file or needs an upgrade.
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        limits: Limits = DEFAULT_LIMITS,
        device_id: str | None = None,
        read_only: bool = False,
    ) -> None:
        self.limits = limits
        self.path = Path(db_path)
        self.read_only = read_only
        self._lock = threading.RLock()
        self._joined = False  # inside a transaction: writes join it
        conn = connect(self.path, read_only=read_only)
        try:
            self._db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
            self._conn = conn
            if read_only:
                check_current(self._db, self.path)
            else:
                # A new file takes larger pages: storing pulled ~1 KB records costs less.
                conn.execute("PRAGMA page_size = 16384")  # (existing files keep theirs)
                retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"))
                conn.execute("PRAGMA synchronous = FULL")
                with self._write():
                    migrate(self._db)
                    conn.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('device_id', ?)",
                        (device_id or str(uuid.uuid4()),),
                    )
            self._device_id: str = self._meta("device_id") or ""
        except (sqlite3.DatabaseError, StorageCorruptError) as exc:
            conn.close()
            detail = exc.__cause__ if isinstance(exc, StorageCorruptError) else exc
            raise ConfigError(
                f"cannot open {self.path} as a cogsync store ({detail}): pass the path of a "
                "device file cogsync created, or a new path"
            ) from exc
        except BaseException:
            conn.close()
            raise

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: commit on success, roll back on any error.

        Inside `transaction` it joins the open transaction instead.
        """
        with self._lock:
            if self.read_only:
                raise UsageError(f"{self.path} was opened read-only; open it without read_only")
            conn = self._conn
            if self._joined:
                yield conn
                return
            try:
                retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
                self._joined = True
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
                finally:
                    self._joined = False
            except sqlite3.Error as exc:
                raise storage_error(exc, self.path) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group calls into one transaction: all apply or none; other processes wait."""
        with self._write():
            yield

    def _rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise storage_error(exc, self.path) from exc

    def _meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    # -- identity -----------------------------------------------------------------------

    def device_id(self) -> str:
        """A stable random id for this device (created with the store)."""
        return self._device_id

    def identity_id(self) -> str | None:
        """The identity id this device last used, or None while still unknown."""
        return self._meta("identity_id")

    def set_identity_id(self, identity_id: str | None, *, moved_from: str | None = None) -> None:
        """Remember ``identity_id`` as the current identity (None forgets it).

        ``moved_from``: an owner whose data moved to ``identity_id``; `resolve_owner` sends
        its clients there.
        """
        with self._write() as conn:
            owners.set_identity(conn, identity_id, moved_from)

    def provisional_owner(self) -> str:
        """The owner under which data written before any identity was known is kept."""
        return f"provisional:{self._device_id}"

    def current_owner(self) -> str:
        """The identity id, or the provisional owner while none is known."""
        return self.identity_id() or self.provisional_owner()

    def resolve_owner(self, claimed: str) -> str:
        """The owner a client that believes it is ``claimed`` reads and writes as now.

        Raises:
            IdentityConflictError: the file now belongs to an identity ``claimed``'s data
                never moved to.
        """
        with self._lock:
            return owners.follow_moves(
                claimed, self.current_owner(), lambda o: self._meta(f"moved:{o}")
            )

    def known_identities(self) -> dict[str, dict[str, str | None]]:
        """Identity id -> the logins it used here (provider -> subject digest); {} for a guest."""
        rows = self._rows("SELECT key, value FROM meta WHERE key GLOB 'logins:*'")
        return owners.known_identities(rows)

    def remember_identity(self, identity_id: str, logins: Mapping[str, str | None]) -> None:
        """Record which logins ``identity_id`` used here ({} for a guest)."""
        with self._write() as conn:
            owners.remember_identity(conn, identity_id, logins)

    def attach_identity(self, identity_id: str) -> None:
        """Move provisional data to ``identity_id`` (merging same-named datasets).

        Moves bypass the limits: data written offline is never refused at login.
        """
        source = self.provisional_owner()
        with self._write() as conn:
            if identity_id != source:
                names = conn.execute("SELECT name FROM datasets WHERE owner = ?", (source,))
                for (name,) in names.fetchall():
                    self._move(conn, source, name, identity_id, name)
            owners.set_identity(conn, identity_id, source)

    @staticmethod
    def _move(
        conn: sqlite3.Connection, owner: str, name: str, new_owner: str, new_name: str
    ) -> None:
        """Move one dataset; one pending deletion with no live records just disappears."""
        params: dict[str, object] = {"so": owner, "sn": name, "do": new_owner, "dn": new_name}
        params.update(newest=None, count=None, clear=False, floor=_floor(conn))
        pending, count = conn.execute(
            "SELECT deleted_pending, record_count FROM datasets WHERE owner = ? AND name = ?",
            (owner, name),
        ).fetchone()
        if not pending or count:
            conn.execute(sql.MOVE_MERGE, params)
            conn.execute(sql.MOVE_NEW, params)
            conn.execute(sql.MOVE_DATASET, params)
            conn.execute(sql.FINISH_DATASET, params)
        _drop(conn, owner, name)

    # -- datasets -----------------------------------------------------------------------

    def list_datasets(self, owner: str) -> list[DatasetState]:
        """All datasets of ``owner`` kept locally, including ones deleted but not yet synced."""
        rows = self._rows(
            sql.SELECT_DATASETS,
            (owner,),
        )
        return [as_dataset(row) for row in rows]

    def get_dataset(self, owner: str, name: str) -> DatasetState | None:
        """One dataset's bookkeeping row, or None."""
        rows = self._rows(
            sql.SELECT_DATASET,
            (owner, name),
        )
        return as_dataset(rows[0]) if rows else None

    def create_dataset(self, owner: str, name: str) -> DatasetState:
        """Create an empty dataset if absent (enforces the datasets-per-identity limit)."""
        validate_name(name, self.limits)
        with self._write() as conn:
            if not conn.execute(
                "SELECT 1 FROM datasets WHERE owner = ? AND name = ?", (owner, name)
            ).fetchone():
                counted = conn.execute(sql.COUNTED_DATASETS, (owner,)).fetchone()[0]
                check_dataset_count(counted + 1, self.limits)
                conn.execute("INSERT INTO datasets (owner, name) VALUES (?, ?)", (owner, name))
        state = self.get_dataset(owner, name)
        assert state is not None
        return state

    def mark_dataset_deleted(self, owner: str, name: str) -> None:
        """The app deleted the dataset: drop its records and flag the deletion for the next sync."""
        validate_name(name, self.limits)
        with self._write() as conn:
            _delete_records(conn, owner, name)
            conn.execute(
                "INSERT INTO datasets (owner, name, deleted_pending) VALUES (?, ?, 1) ON CONFLICT "
                "DO UPDATE SET deleted_pending = 1, record_count = 0, size_bytes = 0",
                (owner, name),
            )

    def drop_dataset(self, owner: str, name: str) -> None:
        """Forget a dataset locally (records and bookkeeping)."""
        with self._write() as conn:
            _drop(conn, owner, name)

    def rename_dataset(self, owner: str, name: str, new_owner: str, new_name: str) -> None:
        """Move a dataset to another owner/name, its live records dirty and unsynced.

        Records overwrite same-keyed ones of an existing target (which keep their sync
        count); tombstones are dropped. Limits are not checked (data is only moved).

        Raises:
            UsageError: ``owner`` holds no dataset ``name``.
        """
        validate_name(new_name, self.limits)
        with self._write() as conn:
            if not conn.execute(
                "SELECT 1 FROM datasets WHERE owner = ? AND name = ?", (owner, name)
            ).fetchone():
                raise UsageError(f"no local dataset {name!r} to rename: create it first")
            if (owner, name) != (new_owner, new_name):
                self._move(conn, owner, name, new_owner, new_name)

    # -- records ------------------------------------------------------------------------

    def get_record(self, owner: str, name: str, key: str) -> Record | None:
        """One record (tombstones included), or None if never written."""
        rows = self._rows(
            sql.SELECT_RECORD,
            (owner, name, key),
        )
        return as_record(rows[0]) if rows else None

    def get_records(
        self, owner: str, name: str, keys: Collection[str] | None = None
    ) -> dict[str, Record]:
        """Every record of a dataset (or those among ``keys``), tombstones included."""
        rows = self._among(sql.SELECT_RECORDS, owner, name, keys, " ORDER BY key")
        return {row[0]: as_record(row) for row in rows}

    def record_states(
        self, owner: str, name: str, keys: Collection[str] | None = None
    ) -> dict[str, tuple[str | None, int, int]]:
        """Key -> (value, sync count, dirty 0 or 1) of every record (or those among ``keys``):
        what a watcher of the file compares, read without building `Record` values."""
        rows = self._among(sql.SELECT_STATES, owner, name, keys)
        return {key: (value, count, dirty) for key, value, count, dirty in rows}

    def _among(
        self, select: str, owner: str, name: str, keys: Collection[str] | None, order: str = ""
    ) -> list[Any]:
        with self._lock:
            try:
                return _rows_among(self._conn, select, owner, name, keys, order)
            except sqlite3.Error as exc:
                raise storage_error(exc, self.path) from exc

    def dirty_records(self, owner: str, name: str) -> list[Record]:
        """Records changed locally and not yet pushed."""
        rows = self._rows(
            sql.SELECT_DIRTY,
            (owner, name),
        )
        return [as_record(row) for row in rows]

    def get_bases(self, owner: str, name: str) -> dict[str, str | None]:
        """Key -> base of each dirty record whose base is known (None: absent or removed)."""
        return dict(self._rows(sql.SELECT_BASES, (owner, name)))

    def size_in_bytes(self, owner: str, name: str) -> int:
        """UTF-8 bytes of keys + values of the dataset's live records."""
        rows = self._rows(
            "SELECT size_bytes FROM datasets WHERE owner = ? AND name = ?", (owner, name)
        )
        return int(rows[0][0]) if rows else 0

    def write_local(
        self, owner: str, name: str, changes: Mapping[str, str | None], now: datetime
    ) -> None:
        """Apply an app's writes (value, or None to remove) in one transaction, marking them dirty.

        Validates name, keys, values and every limit before writing; creates the dataset
        if needed; bumps each record's revision (a new record starts above every revision a
        removed record had); a None for a never-synced record deletes it outright (unless a
        push may have carried it: see `mark_sent`), otherwise leaves a dirty tombstone.
        Writing to a dataset pending deletion keeps the pending deletion and makes the
        dataset count again.
        """
        validate_name(name, self.limits)
        changes = dict(changes)
        for key, value in changes.items():
            validate_key(key, self.limits)
            if value is not None:
                validate_value(value)
        stamp = as_text(now)
        with self._write() as conn:
            row = conn.execute(
                "SELECT deleted_pending, record_count, size_bytes FROM datasets "
                "WHERE owner = ? AND name = ?",
                (owner, name),
            ).fetchone()
            pending, count, size = row or (None, 0, 0)
            # A new dataset, or an empty one pending deletion that gains records, starts to count.
            creates = any(v is not None for v in changes.values())
            if pending is None or (pending and not count and creates):
                before = conn.execute(sql.COUNTED_DATASETS, (owner,)).fetchone()[0]
                check_dataset_count(before + 1, self.limits)
            touched = self._touched(conn, owner, name, list(changes))
            current = {key: row[1] for key, row in touched.items()}
            count, size = check_dataset_totals(
                name,
                current,
                changes,
                self.limits,
                rest_count=count - sum(v is not None for v in current.values()),
                rest_bytes=size - sum(row[4] or 0 for row in touched.values()),
            )
            upserts: dict[str, str | None] = {}
            deletes = []
            for key, value in changes.items():
                old = touched.get(key)
                if value is None and (old is None or (old[2] == 0 and not old[5])):
                    if old is not None:
                        deletes.append((owner, name, key))
                    continue
                upserts[key] = value
            device = self._device_id
            first = _floor(conn) + 1  # the revision of a record created here
            if len(upserts) > 1 and not any(
                "\0" in k or "\0" in (v or "") for k, v in upserts.items()
            ):
                # (json_each would cut strings at NUL characters, hence the check)
                text = json.dumps(upserts, ensure_ascii=False)
                params = (owner, name, stamp, device, stamp, first, text)
                conn.execute(sql.UPSERT_LOCAL_JSON, params)
            else:
                rows = [
                    (owner, name, k, v, stamp, device, stamp, first) for k, v in upserts.items()
                ]
                conn.executemany(sql.UPSERT_LOCAL, rows)
            if deletes:
                _retire(conn, max(touched[key][3] for _, _, key in deletes))
                conn.executemany(
                    "DELETE FROM records WHERE owner = ? AND dataset = ? AND key = ?", deletes
                )
            conn.execute(sql.SAVE_DATASET, (owner, name, stamp, count, size))

    @staticmethod
    def _touched(
        conn: sqlite3.Connection,
        owner: str,
        name: str,
        keys: list[str],
        select: str = sql.SELECT_ALL,
    ) -> dict[str, Any]:
        """The existing rows among ``keys``, by key (columns as in ``select``: ``sql.SELECT_ALL``
        or ``sql.SELECT_REVISIONS``)."""
        return {row[0]: row for row in _rows_among(conn, select, owner, name, keys)}

    def mark_sent(self, owner: str, name: str, keys: Sequence[str]) -> None:
        """Note that a push carrying these never-synced records is about to be sent."""
        with self._write() as conn:
            execute_among(conn, sql.MARK_SENT, (owner, name), keys)

    def apply_sync(
        self,
        owner: str,
        name: str,
        writes: Sequence[RecordWrite],
        *,
        last_sync_count: int | None = None,
        clear_deleted_pending: bool = False,
        reset_sync_counts: bool = False,
    ) -> list[str]:
        """Apply a sync step in one transaction; return the keys skipped by revision guards.

        Applied writes keep the local revision. A skipped write with
        ``keep_sync_count_on_mismatch`` adopts only the sync count; if the app removed the
        record meanwhile, a dirty tombstone carrying that sync count is left so the
        removal reaches the server (its dates are unknown: None).
        """
        check_sync_writes(writes)
        skipped: list[str] = []
        missed: list[RecordWrite] = []
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO datasets (owner, name) VALUES (?, ?)", (owner, name)
            )
            if reset_sync_counts:
                conn.execute(sql.RESET_SYNC_COUNTS, (owner, name))
            ours, pulled = SyncWrites.parts(writes)
            pulled_rows = record_rows(pulled)
            keys = [w.record.key for w in ours] + [row[0] for row in pulled_rows]
            revisions: dict[str, int] = {
                key: row[1]
                for key, row in self._touched(conn, owner, name, keys, sql.SELECT_REVISIONS).items()
            }
            # Applied writes go to insert_many, their rows made as it steps (none kept).
            rows = SyncedRows(owner, name)
            for write in ours:
                rec = write.record
                current = revisions.get(rec.key)
                if write.expected_revision in (None, current or 0):
                    rows.add(rec, current or 0, write.base)
                    revisions[rec.key] = current or 0
                    continue
                skipped.append(rec.key)
                missed.append(write)
                if not write.keep_sync_count_on_mismatch:
                    continue
                insert_many(conn, sql.UPSERT_SYNCED, rows.drain())  # keep the order per key
                if current is not None:
                    conn.execute(sql.SET_SKIPPED, (rec.sync_count, rec.value, owner, name, rec.key))
                    continue
                revision = max(write.expected_revision or 0, _floor(conn)) + 1
                conn.execute(
                    sql.UPSERT_SYNCED,
                    (owner, name, rec.key, None, rec.sync_count, None, self._device_id, None,
                     1, revision, rec.value, 1),
                )  # fmt: skip
                revisions[rec.key] = revision
            for row in pulled_rows:  # each as RecordWrite(Record(*row), 0)
                if revisions.get(row[0]):
                    skipped.append(row[0])
                    missed.append(RecordWrite(Record(*row), 0))
                else:
                    rows.add_pulled(row)
                    revisions[row[0]] = 0
            insert_many(conn, sql.UPSERT_SYNCED, rows.drain())
            newest = rows.newest
            conn.execute(
                sql.FINISH_DATASET,
                {"do": owner, "dn": name, "newest": newest,
                 "count": covered_sync_count(last_sync_count, missed),
                 "clear": clear_deleted_pending},
            )  # fmt: skip
        return skipped

    # -- whole store --------------------------------------------------------------------

    def data_version(self) -> int:
        """SQLite's ``data_version``: it changes when another connection commits to the file."""
        return int(self._rows("PRAGMA data_version")[0][0])

    def has_unsynced_changes(self) -> bool:
        """True if any owner has dirty records or pending dataset deletions."""
        rows = self._rows(
            "SELECT EXISTS (SELECT 1 FROM records WHERE dirty = 1) "
            "OR EXISTS (SELECT 1 FROM datasets WHERE deleted_pending = 1)"
        )
        return bool(rows[0][0])

    def wipe(self) -> None:
        """Delete all datasets and forget every identity (the device id stays)."""
        with self._write() as conn:
            _retire(conn, conn.execute("SELECT max(revision) FROM records").fetchone()[0])
            conn.execute("DELETE FROM records")
            conn.execute("DELETE FROM datasets")
            owners.forget_identities(conn)

    def close(self) -> None:
        """Close the database connection (the file stays consistent at any moment)."""
        with self._lock:
            self._db.close()
