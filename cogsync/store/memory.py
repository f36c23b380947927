"""`MemoryStore`: the reference `LocalStore`, kept in plain dicts.

It defines the semantics `SQLiteStore` must match (the store contract and a randomised
comparison run both), and is a fast store for tests. Every write method validates
everything first and mutates only afterwards, so a failed call changes nothing.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

from cogsync.exceptions import InvalidKeyError, UsageError
from cogsync.limits import (
    DEFAULT_LIMITS,
    Limits,
    check_dataset_count,
    check_dataset_totals,
    record_size,
    validate_key,
    validate_name,
    validate_value,
)
from cogsync.models import DatasetState, Record, RecordWrite, SyncWrites, record_rows
from cogsync.store.owners import follow_moves

__all__ = ["MemoryStore", "check_sync_writes", "covered_sync_count"]

_Dataset = tuple[str, str]


def check_sync_writes(writes: Sequence[RecordWrite]) -> None:
    """Raise unless every write has a non-empty str key and a str or None value.

    Sync writes bypass the app limits but never the shape of a record.
    """
    ours, pulled = SyncWrites.parts(writes)
    mine = [(w.record.key, w.record.value) for w in ours]
    theirs = ((row[0], row[1]) for row in record_rows(pulled))
    for key, value in itertools.chain(mine, theirs):
        if not isinstance(key, str) or not key:
            raise InvalidKeyError(f"sync wrote a record key {key!r}: keys are non-empty str")
        if value is not None:
            validate_value(value)


def covered_sync_count(last_sync_count: int | None, skipped: Sequence[RecordWrite]) -> int | None:
    """The ``last_sync_count`` a sync step may store, given the pulled writes it skipped.

    A pulled record skipped by its revision guard (the app wrote the key meanwhile) is not
    stored, so the count must stay below it: the next pull fetches it again, and the
    conflict is seen then, even if the app's own edit is gone by that time.
    """
    pulled = [w.record.sync_count for w in skipped if not w.keep_sync_count_on_mismatch]
    if last_sync_count is None or not pulled:
        return last_sync_count
    return min(last_sync_count, min(pulled) - 1)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _live(records: Mapping[str, Record]) -> bool:
    return any(rec.value is not None for rec in records.values())


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return a if b is None or (a is not None and a >= b) else b


class MemoryStore:
    """A `LocalStore` in memory, with the same semantics as `SQLiteStore`.

    Args:
        limits: the limits `write_local` and `create_dataset` enforce.
        device_id: this device's id (a random one if None).
    """

    def __init__(self, *, limits: Limits = DEFAULT_LIMITS, device_id: str | None = None) -> None:
        self.limits = limits
        self._device_id = device_id or str(uuid.uuid4())
        self._identity_id: str | None = None
        self._logins: dict[str, dict[str, str | None]] = {}
        self._moved: dict[str, str] = {}
        self._datasets: dict[_Dataset, DatasetState] = {}
        self._records: dict[_Dataset, dict[str, Record]] = {}
        # Known bases of dirty records (see `get_bases`); entries of clean records are stale.
        self._bases: dict[_Dataset, dict[str, str | None]] = {}
        self._sent: dict[_Dataset, set[str]] = {}  # see `mark_sent`
        # The highest revision of any record removed (deleted outright, or with its
        # dataset): a record created anew starts above it, so a revision never names two
        # versions of one key and a sync's revision guard never takes one for the other.
        self._floor = 0
        self._lock = threading.RLock()

    def _retire(self, records: Iterable[Record]) -> None:
        """Raise the revision floor past ``records``, which are being removed."""
        self._floor = max([self._floor, *(r.revision for r in records)])

    # -- identity -----------------------------------------------------------------------

    def device_id(self) -> str:
        """A stable random id for this device (created with the store)."""
        return self._device_id

    def identity_id(self) -> str | None:
        """The identity id this device last used, or None while still unknown."""
        return self._identity_id

    def set_identity_id(self, identity_id: str | None, *, moved_from: str | None = None) -> None:
        """Remember ``identity_id`` as the current identity (None forgets it).

        ``moved_from``: an owner whose data moved to ``identity_id``; `resolve_owner` sends
        its clients there.
        """
        with self._lock:
            self._identity_id = identity_id
            if identity_id is not None:
                self._moved.pop(identity_id, None)
                if moved_from is not None and moved_from != identity_id:
                    self._moved[moved_from] = identity_id

    def provisional_owner(self) -> str:
        """The owner under which data written before any identity was known is kept."""
        return f"provisional:{self._device_id}"

    def current_owner(self) -> str:
        """The identity id, or the provisional owner while none is known."""
        return self._identity_id or self.provisional_owner()

    def resolve_owner(self, claimed: str) -> str:
        """The owner a client that believes it is ``claimed`` reads and writes as now.

        Raises:
            IdentityConflictError: the store now belongs to an identity ``claimed``'s data
                never moved to.
        """
        with self._lock:
            return follow_moves(claimed, self.current_owner(), self._moved.get)

    def known_identities(self) -> dict[str, dict[str, str | None]]:
        """Identity id -> the logins it used here (provider -> subject digest); {} for a guest."""
        with self._lock:
            return {identity: dict(logins) for identity, logins in self._logins.items()}

    def remember_identity(self, identity_id: str, logins: Mapping[str, str | None]) -> None:
        """Record which logins ``identity_id`` used here ({} for a guest)."""
        with self._lock:
            self._logins[identity_id] = dict(sorted(logins.items()))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group calls into one transaction: all apply or none; other threads wait."""
        with self._lock:
            saved = (
                dict(self._datasets),
                {ds: dict(records) for ds, records in self._records.items()},
                self._identity_id,
                dict(self._logins),
                dict(self._moved),
            )
            bases = {ds: dict(known) for ds, known in self._bases.items()}
            try:
                yield
            except BaseException:
                self._datasets, self._records, self._identity_id = saved[:3]
                self._logins, self._moved = saved[3:]
                self._bases = bases
                raise

    def attach_identity(self, identity_id: str) -> None:
        """Move provisional data to ``identity_id`` (merging same-named datasets)."""
        source = self.provisional_owner()
        with self._lock:
            if identity_id != source:
                for owner, name in [ds for ds in self._datasets if ds[0] == source]:
                    self._move((owner, name), (identity_id, name))
            self.set_identity_id(identity_id, moved_from=source)

    def _move(self, source: _Dataset, target: _Dataset) -> None:
        state = self._datasets.pop(source)
        moved = self._records.pop(source, {})
        floor = self._floor
        self._retire(moved.values())
        self._bases.pop(source, None)
        self._sent.pop(source, None)
        if state.deleted_pending and not _live(moved):
            return
        records = self._records.setdefault(target, {})
        bases = self._bases.setdefault(target, {})
        for key, rec in moved.items():
            if rec.value is None:
                continue
            old = records.get(key)
            self._edit_base(bases, key, old)
            records[key] = replace(
                rec,
                sync_count=old.sync_count if old else 0,
                dirty=True,
                revision=max(rec.revision, old.revision if old else floor) + 1,
            )
        if not records:
            del self._records[target]
        existing = self._datasets.get(target, DatasetState(target[1]))
        modified = _later(existing.last_modified, state.last_modified)
        self._datasets[target] = replace(existing, last_modified=modified)

    # -- datasets -----------------------------------------------------------------------

    def list_datasets(self, owner: str) -> list[DatasetState]:
        """All datasets of ``owner`` kept locally, including ones deleted but not yet synced."""
        with self._lock:
            states = [state for (o, _), state in self._datasets.items() if o == owner]
        return sorted(states, key=lambda state: state.name)

    def get_dataset(self, owner: str, name: str) -> DatasetState | None:
        """One dataset's bookkeeping row, or None."""
        return self._datasets.get((owner, name))

    def _counted(self, owner: str) -> int:
        return sum(
            1
            for ds, state in self._datasets.items()
            if ds[0] == owner and (not state.deleted_pending or _live(self._records.get(ds, {})))
        )

    def create_dataset(self, owner: str, name: str) -> DatasetState:
        """Create an empty dataset if absent (enforces the datasets-per-identity limit)."""
        validate_name(name, self.limits)
        with self._lock:
            if (owner, name) not in self._datasets:
                check_dataset_count(self._counted(owner) + 1, self.limits)
                self._datasets[(owner, name)] = DatasetState(name)
            return self._datasets[(owner, name)]

    def mark_dataset_deleted(self, owner: str, name: str) -> None:
        """The app deleted the dataset: drop its records and flag the deletion for the next sync."""
        validate_name(name, self.limits)
        with self._lock:
            self._retire(self._records.pop((owner, name), {}).values())
            self._bases.pop((owner, name), None)
            self._sent.pop((owner, name), None)
            state = self._datasets.get((owner, name), DatasetState(name))
            self._datasets[(owner, name)] = replace(state, deleted_pending=True)

    def drop_dataset(self, owner: str, name: str) -> None:
        """Forget a dataset locally (records and bookkeeping)."""
        with self._lock:
            self._retire(self._records.pop((owner, name), {}).values())
            self._bases.pop((owner, name), None)
            self._sent.pop((owner, name), None)
            self._datasets.pop((owner, name), None)

    def rename_dataset(self, owner: str, name: str, new_owner: str, new_name: str) -> None:
        """Move a dataset to another owner/name, its live records dirty and unsynced.

        Raises:
            UsageError: ``owner`` holds no dataset ``name``.
        """
        validate_name(new_name, self.limits)
        with self._lock:
            if (owner, name) not in self._datasets:
                raise UsageError(f"no local dataset {name!r} to rename: create it first")
            if (owner, name) != (new_owner, new_name):
                self._move((owner, name), (new_owner, new_name))

    # -- records ------------------------------------------------------------------------

    def get_record(self, owner: str, name: str, key: str) -> Record | None:
        """One record (tombstones included), or None if never written."""
        return self._records.get((owner, name), {}).get(key)

    def get_records(
        self, owner: str, name: str, keys: Collection[str] | None = None
    ) -> dict[str, Record]:
        """Every record of a dataset (or those among ``keys``), tombstones included."""
        with self._lock:
            records = self._records.get((owner, name), {})
            if keys is None:
                return dict(sorted(records.items()))
            return {key: records[key] for key in sorted(set(keys)) if key in records}

    def dirty_records(self, owner: str, name: str) -> list[Record]:
        """Records changed locally and not yet pushed."""
        return [rec for rec in self.get_records(owner, name).values() if rec.dirty]

    def get_bases(self, owner: str, name: str) -> dict[str, str | None]:
        """Key -> base of each dirty record whose base is known (None: absent or removed)."""
        with self._lock:
            known = self._bases.get((owner, name), {})
            return {
                key: known[key]
                for key, rec in self.get_records(owner, name).items()
                if rec.dirty and key in known
            }

    @staticmethod
    def _edit_base(bases: dict[str, str | None], key: str, old: Record | None) -> None:
        """Before ``key`` is edited: a clean (or absent) record's value becomes its base."""
        if old is None or not old.dirty:
            bases[key] = None if old is None else old.value

    def size_in_bytes(self, owner: str, name: str) -> int:
        """UTF-8 bytes of keys + values of the dataset's live records."""
        with self._lock:
            records = self._records.get((owner, name), {})
            return sum(record_size(key, rec.value) for key, rec in records.items())

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
        ds = (owner, name)
        stamp = _utc(now)
        with self._lock:
            records = self._records.get(ds, {})
            state = self._datasets.get(ds)
            counted = state is not None and (not state.deleted_pending or _live(records))
            creates = any(v is not None for v in changes.values())
            if not counted and (state is None or creates):
                check_dataset_count(self._counted(owner) + 1, self.limits)
            current = {key: rec.value for key, rec in records.items()}
            check_dataset_totals(name, current, changes, self.limits)
            records = self._records.setdefault(ds, records)
            bases = self._bases.setdefault(ds, {})
            for key, value in changes.items():
                old = records.get(key)
                unsent = key not in self._sent.get(ds, ())
                if value is None and (old is None or (old.sync_count == 0 and unsent)):
                    self._retire(() if old is None else (records.pop(key),))
                    bases.pop(key, None)
                    continue
                self._edit_base(bases, key, old)
                records[key] = Record(
                    key,
                    value,
                    sync_count=old.sync_count if old else 0,
                    last_modified_date=stamp,
                    last_modified_by=self._device_id,
                    device_last_modified_date=stamp,
                    dirty=True,
                    revision=(old.revision if old else self._floor) + 1,
                )
            if not records:
                del self._records[ds]
            state = state or DatasetState(name)
            self._datasets[ds] = replace(state, last_modified=_later(state.last_modified, stamp))

    def mark_sent(self, owner: str, name: str, keys: Sequence[str]) -> None:
        """Note that a push carrying these never-synced records is about to be sent."""
        with self._lock:
            records = self._records.get((owner, name), {})
            new = {k for k in keys if k in records and records[k].sync_count == 0}
            if new:
                self._sent.setdefault((owner, name), set()).update(new)

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
        ds = (owner, name)
        skipped: list[str] = []
        missed: list[RecordWrite] = []
        with self._lock:
            state = self._datasets.get(ds) or DatasetState(name)
            records = self._records.setdefault(ds, {})
            bases = self._bases.setdefault(ds, {})
            if reset_sync_counts:
                for key, rec in records.items():
                    records[key] = replace(
                        rec, sync_count=0, dirty=rec.dirty or rec.value is not None
                    )
                    bases[key] = None
            newest = state.last_modified
            for write in writes:
                rec = write.record
                old = records.get(rec.key)
                current = old.revision if old else 0
                if write.expected_revision in (None, current):
                    modified = _utc(rec.last_modified_date)
                    records[rec.key] = Record(
                        rec.key, rec.value, rec.sync_count, modified, rec.last_modified_by,
                        _utc(rec.device_last_modified_date), rec.dirty, current,
                    )  # fmt: skip
                    bases[rec.key] = write.base
                    newest = _later(newest, modified)
                    continue
                skipped.append(rec.key)
                missed.append(write)
                if not write.keep_sync_count_on_mismatch:
                    continue
                bases[rec.key] = rec.value
                if old is not None:
                    records[rec.key] = replace(old, sync_count=rec.sync_count)
                    continue
                records[rec.key] = Record(
                    rec.key, None, rec.sync_count, None, self._device_id, None, True,
                    max(write.expected_revision or 0, self._floor) + 1,
                )  # fmt: skip
            if not records:
                del self._records[ds]
            if newest != state.last_modified:
                state = replace(state, last_modified=newest)
            last_sync_count = covered_sync_count(last_sync_count, missed)
            if last_sync_count is not None:
                state = replace(state, last_sync_count=last_sync_count)
            if clear_deleted_pending:
                state = replace(state, deleted_pending=False)
            self._datasets[ds] = state
        return skipped

    # -- whole store --------------------------------------------------------------------

    def has_unsynced_changes(self) -> bool:
        """True if any owner has dirty records or pending dataset deletions."""
        with self._lock:
            return any(s.deleted_pending for s in self._datasets.values()) or any(
                rec.dirty for records in self._records.values() for rec in records.values()
            )

    def wipe(self) -> None:
        """Delete all datasets and forget every identity (the device id stays)."""
        with self._lock:
            self._retire(r for records in self._records.values() for r in records.values())
            self._datasets.clear()
            self._records.clear()
            self._bases.clear()
            self._sent.clear()
            self._identity_id = None
            self._logins.clear()
            self._moved.clear()

    def close(self) -> None:
        """Nothing to release; present for the protocol."""
