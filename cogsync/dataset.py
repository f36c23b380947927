"""`AsyncDataset` and its blocking twin `Dataset`: one named key/value dataset of an identity.

Reads and writes touch only the local store and never need the network; a write is
durable when the call returns. `synchronize` reconciles the dataset with the server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cogsync.engine.conflicts import last_writer_wins
from cogsync.exceptions import InvalidValueError
from cogsync.limits import validate_key, validate_value
from cogsync.models import Record, SyncResult, utcnow

if TYPE_CHECKING:
    from cogsync._blocking import Portal
    from cogsync.client import AsyncClient

__all__ = ["AsyncDataset", "Dataset"]


class AsyncDataset:
    """A dataset of an `AsyncClient`; every method is a coroutine."""

    def __init__(self, client: AsyncClient, name: str) -> None:
        self._client = client
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
            changes[validate_key(key, self._client.limits)] = validate_value(value)
        await self._write(changes)

    async def remove(self, key: str) -> None:
        """Remove ``key`` (synced to other devices as a removal)."""
        await self._write({validate_key(key, self._client.limits): None})

    async def get(self, key: str) -> str | None:
        """The value of ``key``, or None if absent or removed."""
        record = await self.record(key)
        return None if record is None else record.value

    async def record(self, key: str) -> Record | None:
        """The full `Record` for ``key`` (sync count, dates, dirty flag), or None."""
        validate_key(key, self._client.limits)
        store, owner = self._client._store, self._client._owner()
        return await self._client._run(store.get_record, owner, self.name, key)

    async def get_all(self) -> dict[str, str]:
        """All live records as a dict of key to value."""
        store, owner = self._client._store, self._client._owner()
        records = await self._client._run(store.get_records, owner, self.name)
        return {k: r.value for k, r in sorted(records.items()) if r.value is not None}

    async def size_in_bytes(self) -> int:
        """UTF-8 bytes of keys and values of the live records (what the 1 MB limit counts)."""
        store, owner = self._client._store, self._client._owner()
        return await self._client._run(store.size_in_bytes, owner, self.name)

    async def delete(self) -> None:
        """Delete the whole dataset locally; the next sync deletes it on the server too."""
        store, owner = self._client._store, self._client._owner()
        await self._client._run(store.mark_dataset_deleted, owner, self.name)

    async def synchronize(
        self,
        on_conflict: Callable[..., Any] = last_writer_wins,
        on_dataset_deleted: Callable[[str], Any] | None = None,
        on_datasets_merged: Callable[[str, list[str]], Any] | None = None,
        **options: Any,
    ) -> SyncResult:
        """Reconcile with the server; see `AsyncClient.synchronize` for the callbacks."""
        return await self._client.synchronize(
            self.name,
            on_conflict=on_conflict,
            on_dataset_deleted=on_dataset_deleted,
            on_datasets_merged=on_datasets_merged,
            **options,
        )

    async def synchronize_on_connectivity(self, **callbacks: Any) -> SyncResult | None:
        """Sync now if the server is reachable, else as soon as it is (returns None then)."""
        return await self._client.synchronize_on_connectivity(self.name, **callbacks)

    async def _write(self, changes: dict[str, str | None]) -> None:
        store, owner = self._client._store, self._client._owner()
        await self._client._run(store.write_local, owner, self.name, changes, utcnow())


class Dataset:
    """The blocking twin of `AsyncDataset`, returned by `Client.dataset`."""

    def __init__(self, inner: AsyncDataset, portal: Portal) -> None:
        self._inner = inner
        self._portal = portal
        self.name = inner.name

    def __repr__(self) -> str:
        return f"<Dataset {self.name!r}>"

    def put(self, key: str, value: str) -> None:
        """Set ``key`` to ``value`` (a str; store JSON as text)."""
        self._portal.call(self._inner.put(key, value))

    def put_all(self, values: Mapping[str, str]) -> None:
        """Set several records in one transaction: all are written or none."""
        self._portal.call(self._inner.put_all(values))

    def remove(self, key: str) -> None:
        """Remove ``key`` (synced to other devices as a removal)."""
        self._portal.call(self._inner.remove(key))

    def get(self, key: str) -> str | None:
        """The value of ``key``, or None if absent or removed."""
        return self._portal.call(self._inner.get(key))

    def record(self, key: str) -> Record | None:
        """The full `Record` for ``key``, or None."""
        return self._portal.call(self._inner.record(key))

    def get_all(self) -> dict[str, str]:
        """All live records as a dict of key to value."""
        return self._portal.call(self._inner.get_all())

    def size_in_bytes(self) -> int:
        """UTF-8 bytes of keys and values of the live records."""
        return self._portal.call(self._inner.size_in_bytes())

    def delete(self) -> None:
        """Delete the whole dataset locally; the next sync deletes it on the server too."""
        self._portal.call(self._inner.delete())

    def synchronize(
        self,
        on_conflict: Callable[..., Any] = last_writer_wins,
        on_dataset_deleted: Callable[[str], Any] | None = None,
        on_datasets_merged: Callable[[str, list[str]], Any] | None = None,
        **options: Any,
    ) -> SyncResult:
        """Reconcile with the server; see `AsyncClient.synchronize` for the callbacks.

        Callbacks run in a worker thread, so they may read and write datasets (but not
        start another sync, login or wipe).
        """
        from cogsync.client import _off_loop

        coro = self._inner.synchronize(
            _off_loop(on_conflict),
            _off_loop(on_dataset_deleted),
            _off_loop(on_datasets_merged),
            **options,
        )
        return self._portal.call(coro)

    def synchronize_on_connectivity(self, **callbacks: Any) -> SyncResult | None:
        """Sync now if reachable; otherwise schedule a sync for when the server is back."""
        from cogsync.client import _off_loop_all

        coro = self._inner.synchronize_on_connectivity(**_off_loop_all(callbacks))
        return self._portal.call(coro)
