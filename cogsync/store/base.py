"""The `LocalStore` protocol: everything the client and the sync engine need from storage.

Data is kept per *owner*: the identity id once known, or the store's provisional owner
(``provisional_owner()``) before the first contact with the server; `resolve_owner` tells a
client whose data it reaches now, after moves other clients made. Every write method is
one transaction: it validates all limits first and either applies everything or raises
and changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from cogsync.limits import Limits
from cogsync.models import DatasetState, Record, RecordWrite

__all__ = ["LocalStore"]


class LocalStore(Protocol):
    """A device's local datasets. Implementations: `SQLiteStore`, `MemoryStore`."""

    limits: Limits

    def device_id(self) -> str:
        """A stable random id for this device (created with the store)."""
        ...

    def identity_id(self) -> str | None:
        """The identity id this device last used, or None while still unknown."""
        ...

    def set_identity_id(self, identity_id: str | None, *, moved_from: str | None = None) -> None:
        """Remember ``identity_id`` as the current identity (None forgets it).

        ``moved_from``: an owner whose data moved to ``identity_id`` (a guest's, at login);
        `resolve_owner` sends its clients there.
        """
        ...

    def provisional_owner(self) -> str:
        """The owner under which data written before any identity was known is kept."""
        ...

    def current_owner(self) -> str:
        """The identity id, or the provisional owner while none is known."""
        ...

    def resolve_owner(self, claimed: str) -> str:
        """The owner a client that believes it is ``claimed`` reads and writes as now.

        That is ``claimed`` while it is the current owner, or the current owner if
        ``claimed``'s data moved into it (directly or in steps).

        Raises:
            IdentityConflictError: the store now belongs to an identity ``claimed``'s data
                never moved to (another client switched identities).
        """
        ...

    def known_identities(self) -> dict[str, dict[str, str | None]]:
        """Identity id -> the logins it used on this device ({} for a guest).

        Logins map provider -> a digest of the token's subject (None if it names none).
        Identities never remembered are absent: their kind is unknown.
        """
        ...

    def remember_identity(self, identity_id: str, logins: Mapping[str, str | None]) -> None:
        """Record which logins ``identity_id`` used on this device ({} for a guest)."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Group calls into one transaction: all of them apply or none; other writers wait."""
        ...

    def attach_identity(self, identity_id: str) -> None:
        """Move all data kept under the provisional owner to ``identity_id`` (one transaction).

        Datasets that ``identity_id`` already holds locally under the same name are merged:
        provisional records overwrite (stay dirty), so nothing written offline is lost.
        Also sets the current identity id, recording the move for `resolve_owner`.
        """
        ...

    def list_datasets(self, owner: str) -> list[DatasetState]:
        """All datasets of ``owner`` kept locally, including ones deleted but not yet synced."""
        ...

    def get_dataset(self, owner: str, name: str) -> DatasetState | None:
        """One dataset's bookkeeping row, or None."""
        ...

    def create_dataset(self, owner: str, name: str) -> DatasetState:
        """Create an empty dataset if absent (enforces the datasets-per-identity limit)."""
        ...

    def get_record(self, owner: str, name: str, key: str) -> Record | None:
        """One record (tombstones included), or None if never written."""
        ...

    def get_records(
        self, owner: str, name: str, keys: Collection[str] | None = None
    ) -> dict[str, Record]:
        """Every record of a dataset (or those among ``keys``), tombstones included."""
        ...

    def get_bases(self, owner: str, name: str) -> dict[str, str | None]:
        """Key -> base of each dirty record whose base is known.

        A record's base is the value the server held at the record's sync count when this
        device's edit began (None: absent or removed): the common ancestor of a three-way
        merge. A record first edited before the store kept bases has none (absent here).
        """
        ...

    def write_local(
        self, owner: str, name: str, changes: Mapping[str, str | None], now: datetime
    ) -> None:
        """Apply an app's writes (value, or None to remove) in one transaction, marking them dirty.

        Validates name, keys, values and every limit before writing; creates the dataset
        if needed; bumps each record's revision; a None for a never-synced record deletes
        it outright unless `mark_sent` noted it, otherwise leaves a dirty tombstone. A
        clean record that becomes dirty keeps its value as its base (see `get_bases`).
        A record created anew takes a revision above that of every record the store ever
        removed, so a sync that read a removed record's revision never takes the new one
        for it (its revision guard skips the new record).
        """
        ...

    def size_in_bytes(self, owner: str, name: str) -> int:
        """UTF-8 bytes of keys + values of the dataset's live records."""
        ...

    def mark_dataset_deleted(self, owner: str, name: str) -> None:
        """The app deleted the dataset: drop its records and flag the deletion for the next sync."""
        ...

    def dirty_records(self, owner: str, name: str) -> list[Record]:
        """Records changed locally and not yet pushed."""
        ...

    def mark_sent(self, owner: str, name: str, keys: Sequence[str]) -> None:
        """Note, before a push carries them, that these never-synced records may reach the
        server: removing one later leaves a dirty tombstone (the push's answer may be lost,
        so only the server knows whether it holds the record) instead of deleting it."""
        ...

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

        ``reset_sync_counts`` sets every record's sync_count to 0 and marks live records
        dirty first (the dataset was deleted on the server and is being recreated).
        ``last_sync_count`` (if given) is stored in the same transaction, so it never runs
        ahead of the records it covers. Writes bypass the app limits (server data is
        authoritative) but never the schema.
        """
        ...

    def drop_dataset(self, owner: str, name: str) -> None:
        """Forget a dataset locally (records and bookkeeping)."""
        ...

    def rename_dataset(self, owner: str, name: str, new_owner: str, new_name: str) -> None:
        """Move a dataset to another owner/name, all its live records marked dirty and unsynced."""
        ...

    def has_unsynced_changes(self) -> bool:
        """True if any owner has dirty records or pending dataset deletions."""
        ...

    def wipe(self) -> None:
        """Delete all datasets and forget every identity and move (the device id stays)."""
        ...

    def close(self) -> None:
        """Release the underlying resources."""
        ...
