"""`AsyncDataset`: one named key/value dataset of an identity (its blocking twin `Dataset`
lives in `cogsync.blocking`).

Reads and writes touch only the local store and never need the network; a write is
durable when the call returns. `synchronize` reconciles the dataset with the server.
A dataset sees its client only through a `LocalView` (the store, whose data it is, the
store thread) and the client's two sync entry points.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from cogsync._store_thread import RunBlocking
from cogsync.engine.conflicts import last_writer_wins
from cogsync.exceptions import InvalidValueError
from cogsync.limits import validate_key, validate_value
from cogsync.models import DatasetMetadata, Record, SyncResult, utcnow
from cogsync.status import DatasetStatus
from cogsync.store.base import LocalStore

__all__ = ["AsyncDataset", "LocalView", "SyncEntryPoints", "list_metadata"]

T = TypeVar("T")


@dataclass(frozen=True)
class LocalView:
    """What a dataset reads and writes through.

    Attributes:
        store: the device's local store.
        owner: whose data the client believes is its own (changes on login and wipe);
            resolved against the store on the store thread (`LocalStore.resolve_owner`).
        run: runs a blocking store call on the store's writer thread.
        on_write: awaited with ``(dataset, keys)`` after each local write (status, events).
    """

    store: LocalStore
    owner: Callable[[], str]
    run: RunBlocking
    on_write: Callable[[str, tuple[str, ...]], Awaitable[None]] | None = None

    async def read(self, method: Callable[..., T], *args: Any) -> T:
        """``method(owner, *args)`` on the store thread, the owner resolved there."""
        store, claimed = self.store, self.owner

        def job() -> T:
            return method(store.resolve_owner(claimed()), *args)

        return await self.run(job)

    async def write(self, method: Callable[..., T], *args: Any) -> T:
        """``method(owner, *args)`` on the store thread, the owner resolved in its transaction.

        So the write lands where an identity change running before it left the data, and a
        change running after it moves it along (or leaves it to its identity).
        """
        store, claimed = self.store, self.owner

        def job() -> T:
            with store.transaction():
                return method(store.resolve_owner(claimed()), *args)

        return await self.run(job)


def list_metadata(owner: str, store: LocalStore) -> list[DatasetMetadata]:
    """The datasets ``owner`` keeps in ``store``, pending deletions left out (store thread)."""
    result = []
    for state in store.list_datasets(owner):
        if state.deleted_pending:
            continue
        records = store.get_records(owner, state.name)
        result.append(
            DatasetMetadata(
                name=state.name,
                sync_count=state.last_sync_count,
                size_in_bytes=store.size_in_bytes(owner, state.name),
                record_count=sum(1 for r in records.values() if r.value is not None),
                last_modified=state.last_modified,
            )
        )
    return result


@dataclass(frozen=True)
class SyncEntryPoints:
    """The client's sync calls a dataset forwards to (``(name, **options)``)."""

    synchronize: Callable[..., Awaitable[SyncResult]]
    synchronize_on_connectivity: Callable[..., Awaitable[SyncResult | None]]
    status: Callable[[str], Awaitable[DatasetStatus]] | None = None


class AsyncDataset:
    """A dataset of an `AsyncClient` (from `AsyncClient.dataset`); every method is a coroutine."""

    def __init__(self, name: str, local: LocalView, sync: SyncEntryPoints) -> None:
        self._local = local
        self._sync = sync
        self.name = name

    def __repr__(self) -> str:
        return f"<AsyncDataset {self.name!r}>"

    async def put(self, key: str, value: str) -> None:
        """Set ``key`` to ``value`` (a str; store JSON as text)."""
        await self.put_all({key: value})

    async def put_all(self, values: Mapping[str, str]) -> None:
        """Set several records in one transaction: all are written or none."""
        if not isinstance(values, Mapping):
            raise InvalidValueError("put_all expects a mapping of str keys to str values")
        changes: dict[str, str | None] = {}
        for key, value in values.items():
            changes[validate_key(key, self._local.store.limits)] = validate_value(value)
        await self._write(changes)

    async def remove(self, key: str) -> None:
        """Remove ``key`` (synced to other devices as a removal)."""
        await self._write({validate_key(key, self._local.store.limits): None})

    async def edit(
        self, plan: Callable[[dict[str, Record]], Mapping[str, str | None]]
    ) -> dict[str, str | None]:
        """Read every record and write what ``plan`` returns, in one transaction.

        ``plan(records)`` gets every record (tombstones included) and returns the changes
        (key -> value, None to remove); it runs on the store thread, so it must be quick
        and must not call the client. If it raises, nothing is written and the error
        propagates. Returns the changes written.
        """
        local = self._local
        store, name = local.store, self.name

        def job(owner: str) -> dict[str, str | None]:
            changes = dict(plan(store.get_records(owner, name)))
            if changes:
                store.write_local(owner, name, changes, utcnow())
            return changes

        return await local.write(job)

    async def get(self, key: str) -> str | None:
        """The value of ``key``, or None if absent or removed."""
        record = await self.record(key)
        return None if record is None else record.value

    async def record(self, key: str) -> Record | None:
        """The full `Record` for ``key`` (sync count, dates, dirty flag), or None."""
        local = self._local
        validate_key(key, local.store.limits)
        return await local.read(local.store.get_record, self.name, key)

    async def get_all(self) -> dict[str, str]:
        """All live records as a dict of key to value."""
        local = self._local
        records = await local.read(local.store.get_records, self.name)
        return {k: r.value for k, r in sorted(records.items()) if r.value is not None}

    async def size_in_bytes(self) -> int:
        """UTF-8 bytes of keys and values of the live records (what the 1 MB limit counts)."""
        local = self._local
        return await local.read(local.store.size_in_bytes, self.name)

    async def delete(self) -> None:
        """Delete the whole dataset locally; the next sync deletes it on the server too."""
        local = self._local
        await local.write(local.store.mark_dataset_deleted, self.name)
        if local.on_write is not None:
            await local.on_write(self.name, ())

    async def synchronize(
        self,
        on_conflict: Callable[..., Any] = last_writer_wins,
        on_dataset_deleted: Callable[[str], Any] | None = None,
        on_datasets_merged: Callable[[str, list[str]], Any] | None = None,
        **options: Any,
    ) -> SyncResult:
        """Reconcile with the server; see `AsyncClient.synchronize` for the callbacks."""
        return await self._sync.synchronize(
            self.name,
            on_conflict=on_conflict,
            on_dataset_deleted=on_dataset_deleted,
            on_datasets_merged=on_datasets_merged,
            **options,
        )

    async def synchronize_on_connectivity(self, **callbacks: Any) -> SyncResult | None:
        """Sync now if the server is reachable, else as soon as it is (returns None then)."""
        return await self._sync.synchronize_on_connectivity(self.name, **callbacks)

    async def status(self) -> DatasetStatus:
        """This dataset's `DatasetStatus` (pending changes, running sync, last sync, error)."""
        if self._sync.status is None:
            return DatasetStatus()
        return await self._sync.status(self.name)

    async def _write(self, changes: dict[str, str | None]) -> None:
        local = self._local
        await local.write(local.store.write_local, self.name, changes, utcnow())
        if local.on_write is not None:
            await local.on_write(self.name, tuple(sorted(changes)))
