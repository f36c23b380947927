"""`AsyncClient` (the real thing) and `Client` (its blocking facade).

A client owns one device's local store, knows (or learns) its Cognito identity, and
synchronizes datasets with a backend. Local reads and writes never touch the network;
every store call runs on one worker thread (the store's single writer), off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from cogsync._backoff import backoff_delays
from cogsync._blocking import Portal
from cogsync.auth.cognito import CognitoIdentity
from cogsync.config import Config
from cogsync.dataset import AsyncDataset, Dataset
from cogsync.engine.conflicts import last_writer_wins
from cogsync.engine.driver import run_sync
from cogsync.engine.flow import sync_dataset
from cogsync.exceptions import (
    ConfigError,
    OfflineError,
    UnsyncedChangesError,
)
from cogsync.limits import DEFAULT_LIMITS, Limits, validate_name
from cogsync.models import DatasetMetadata, SyncResult
from cogsync.remote.base import RemoteBackend
from cogsync.store.base import LocalStore
from cogsync.store.sqlite import SQLiteStore

__all__ = ["AsyncClient", "Client"]

log = logging.getLogger(__name__)
T = TypeVar("T")
OnChange = Callable[[str, SyncResult], Any]
DatasetsMerged = Callable[[str, list[str]], Any]


class AsyncClient:
    """An identity's datasets on this device, synced with a cogsync backend.

    Args:
        config: where the identity pool and GraphQL endpoints are (`Config.load`); None
            keeps the client local-only (sync raises `ConfigError`).
        db_path: the device's SQLite file (created if absent).
        logins: provider name -> token, for an authenticated identity.
        identity_id: an identity id the app already has (old SDK cache, migration).
        device_id: override the store's generated device id.
        backend: a ready `RemoteBackend` (tests); None builds the GraphQL backend.
        store: a ready `LocalStore` (tests); None opens ``db_path`` with SQLite.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        db_path: str | Path | None = None,
        logins: dict[str, str] | None = None,
        identity_id: str | None = None,
        device_id: str | None = None,
        backend: RemoteBackend | None = None,
        store: LocalStore | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        if store is None:
            if db_path is None:
                raise ConfigError("Client needs db_path=... (the device's SQLite file)")
            store = SQLiteStore(db_path, limits=limits)
        self._store: LocalStore = store
        self._config = config
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cogsync-store")
        self._device_id = device_id or store.device_id()
        self._logins = dict(logins or {})
        if identity_id is not None and store.identity_id() != identity_id:
            store.attach_identity(identity_id)
        self._backend = backend
        self._identity: CognitoIdentity | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._push: Any = None
        self._push_on_change: OnChange | None = None
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._retry_task: asyncio.Task[None] | None = None
        self._retry_names: set[str] = set()
        self._closed = False

    # ---- context management -------------------------------------------------------
    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop push sync and background retries, close connections and the store."""
        if self._closed:
            return
        self._closed = True
        await self.stop_push_sync()
        tasks = [*self._pending.values()]
        if self._retry_task is not None:
            tasks.append(self._retry_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._backend is not None:
            await self._backend.close()
        await self._run(self._store.close)
        self._executor.shutdown(wait=True)

    # ---- local ----------------------------------------------------------------------
    @property
    def limits(self) -> Limits:
        """The limits this client enforces locally."""
        return self._store.limits

    @property
    def device_id(self) -> str:
        """This device's id (sent with every push)."""
        return self._device_id

    @property
    def identity_id(self) -> str | None:
        """The identity id, once known (cached in the local store); None before first contact."""
        return self._store.identity_id()

    def _owner(self) -> str:
        return self._store.identity_id() or self._store.provisional_owner()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def _local_change(self, name: str) -> None:
        """Hook for local writes (kept for symmetry with push sync; nothing to do now)."""

    async def dataset(self, name: str) -> AsyncDataset:
        """Open (creating locally if needed) the dataset ``name``."""
        validate_name(name, self.limits)
        await self._run(self._store.create_dataset, self._owner(), name)
        return AsyncDataset(self, name)

    open_or_create_dataset = dataset

    async def list_datasets(self) -> list[DatasetMetadata]:
        """The datasets kept on this device (not those pending deletion)."""
        return await self._run(self._list_datasets_blocking)

    def _list_datasets_blocking(self) -> list[DatasetMetadata]:
        owner = self._owner()
        result = []
        for state in self._store.list_datasets(owner):
            if state.deleted_pending:
                continue
            records = self._store.get_records(owner, state.name)
            live = [r for r in records.values() if r.value is not None]
            result.append(
                DatasetMetadata(
                    name=state.name,
                    sync_count=state.last_sync_count,
                    size_in_bytes=self._store.size_in_bytes(owner, state.name),
                    record_count=len(live),
                    last_modified=state.last_modified,
                )
            )
        return result

    # ---- identity -------------------------------------------------------------------
    def _require_config(self) -> Config:
        if self._config is None:
            raise ConfigError("this client has no Config; pass one to sync with a server")
        return self._config

    def _cognito(self) -> CognitoIdentity:
        if self._identity is None:
            self._identity = CognitoIdentity(
                self._require_config(),
                logins=self._logins or None,
                identity_id=self._store.identity_id(),
            )
        return self._identity

    async def get_identity_id(self) -> str:
        """The identity id, asking Cognito Identity (GetId) the first time.

        Data written before the identity was known moves to it here.
        """
        known = self._store.identity_id()
        if known is not None:
            return known
        identity_id = await self._cognito().get_identity_id()
        await self._run(self._store.attach_identity, identity_id)
        return identity_id

    async def _remote(self) -> RemoteBackend:
        if self._backend is None:
            from cogsync.remote.graphql import GraphQLBackend

            await self.get_identity_id()
            self._backend = GraphQLBackend(self._require_config(), self._cognito())
        return self._backend

    async def login(
        self, logins: dict[str, str], *, on_datasets_merged: DatasetsMerged | None = None
    ) -> str:
        """Switch to the authenticated identity of ``logins``; return its identity id.

        If that identity already holds data, this device's datasets of the previous identity
        are kept as ``<name>.<previousIdentityId>`` and ``on_datasets_merged(name, [merged])``
        is called for each; otherwise they simply move to the new identity. Nothing is dropped.
        """
        from cogsync.remote.graphql import GraphQLBackend

        config = self._require_config()
        old_owner = self._owner()
        fresh = CognitoIdentity(config, logins=logins)
        new_id = await fresh.get_identity_id()
        if new_id == old_owner:
            self._logins, self._identity = dict(logins), fresh
            return new_id
        new_backend = GraphQLBackend(config, fresh)
        try:
            remote = await new_backend.list_datasets()
        except BaseException:
            await new_backend.close()
            raise
        local_new = await self._run(self._store.list_datasets, new_id)
        has_data = any(not d.deleted for d in remote) or bool(local_new)
        merged: dict[str, list[str]] = {}

        def move() -> None:
            for state in self._store.list_datasets(old_owner):
                if state.deleted_pending:
                    continue
                target = f"{state.name}.{old_owner}" if has_data else state.name
                validate_name(target, self.limits)
                self._store.rename_dataset(old_owner, state.name, new_id, target)
                if has_data:
                    merged.setdefault(state.name, []).append(target)
            self._store.set_identity_id(new_id)

        await self.stop_push_sync()
        await self._run(move)
        if self._backend is not None:
            await self._backend.close()
        self._backend, self._identity, self._logins = new_backend, fresh, dict(logins)
        for name, names in merged.items():
            if on_datasets_merged is not None:
                await _maybe_await(on_datasets_merged(name, names))
        return new_id

    # ---- sync -----------------------------------------------------------------------
    async def synchronize(
        self,
        name: str,
        *,
        on_conflict: Callable[..., Any] = last_writer_wins,
        on_dataset_deleted: Callable[[str], Any] | None = None,
        on_datasets_merged: Callable[[str, list[str]], Any] | None = None,
        max_retries: int = 5,
    ) -> SyncResult:
        """Reconcile dataset ``name`` with the server: pull, resolve conflicts, push.

        Always ends in a `SyncResult` or a typed error (`OfflineError` leaves local data
        intact; `ConflictError` after ``max_retries`` rejected pushes).
        """
        validate_name(name, self.limits)
        backend = await self._remote()
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            flow = sync_dataset(name, device_id=self._device_id, max_retries=max_retries)
            return await run_sync(
                flow,
                store=self._store,
                owner=self._owner(),
                backend=backend,
                on_conflict=on_conflict,
                on_dataset_deleted=on_dataset_deleted,
                on_datasets_merged=on_datasets_merged,
                run_blocking=self._run,
            )

    async def refresh_dataset_metadata(self) -> list[DatasetMetadata]:
        """Fetch the server's dataset list; datasets this device never opened are added locally."""
        backend = await self._remote()
        remote = await backend.list_datasets()
        owner = self._owner()
        local = {s.name for s in await self._run(self._store.list_datasets, owner)}
        for ds in remote:
            if not ds.deleted and ds.name not in local:
                await self._run(self._store.create_dataset, owner, ds.name)
        return [
            DatasetMetadata(
                name=d.name,
                sync_count=d.sync_count,
                size_in_bytes=d.size_in_bytes,
                record_count=d.record_count,
                last_modified=d.last_modified,
                deleted=d.deleted,
            )
            for d in remote
        ]

    async def synchronize_all(self, **callbacks: Any) -> dict[str, SyncResult]:
        """Sync every local dataset and every dataset the server knows; name -> result."""
        await self.refresh_dataset_metadata()
        states = await self._run(self._store.list_datasets, self._owner())
        results: dict[str, SyncResult] = {}
        for state in states:
            results[state.name] = await self.synchronize(state.name, **callbacks)
        return results

    async def synchronize_on_connectivity(self, name: str, **callbacks: Any) -> SyncResult | None:
        """Sync now if the server is reachable; else retry in the background until it is.

        Returns the result, or None when the sync was deferred.
        """
        try:
            return await self.synchronize(name, **callbacks)
        except OfflineError:
            self._retry_names.add(name)
            if self._retry_task is None or self._retry_task.done():
                self._retry_task = asyncio.create_task(self._retry_until_online(callbacks))
            return None

    async def _retry_until_online(self, callbacks: dict[str, Any]) -> None:
        for delay in backoff_delays(initial=0.5, maximum=30.0):
            await asyncio.sleep(delay)
            try:
                for name in sorted(self._retry_names):
                    await self.synchronize(name, **callbacks)
                    self._retry_names.discard(name)
                return
            except OfflineError:
                continue
            except Exception:
                log.exception("deferred sync failed")
                return

    # ---- push sync ------------------------------------------------------------------
    async def start_push_sync(
        self, on_change: OnChange | None = None, *, debounce: float = 0.05
    ) -> None:
        """Keep a subscription open; sync a dataset when another device changes it.

        A notification only schedules a (debounced) sync; after every (re)connect all
        datasets are synced so that nothing missed while disconnected is lost.
        ``on_change(dataset_name, result)`` is called after each such sync.
        """
        from cogsync.remote.subscription import DatasetChangeSubscription

        if self._push is not None:
            return
        identity_id = await self.get_identity_id()
        await self._remote()
        self._push_on_change = on_change
        self._debounce = debounce
        self._push = DatasetChangeSubscription(
            self._require_config(),
            self._cognito(),
            identity_id,
            on_change=self._on_remote_change,
            on_connect=self._on_push_connect,
        )
        self._push.start()

    async def stop_push_sync(self) -> None:
        """Close the push-sync subscription (no-op if not running)."""
        push, self._push = self._push, None
        if push is not None:
            await push.stop()

    async def _on_push_connect(self) -> None:
        try:
            results = await self.synchronize_all()
        except Exception:
            log.exception("catch-up sync after (re)connect failed")
            return
        for name, result in results.items():
            await self._notify(name, result)

    async def _on_remote_change(self, name: str, sync_count: int, deleted: bool) -> None:
        task = self._pending.get(name)
        if task is not None and not task.done():
            return
        self._pending[name] = asyncio.create_task(self._debounced_sync(name))

    async def _debounced_sync(self, name: str) -> None:
        await asyncio.sleep(self._debounce)
        try:
            result = await self.synchronize(name)
        except Exception:
            log.exception("push-triggered sync of %s failed", name)
            return
        finally:
            self._pending.pop(name, None)
        await self._notify(name, result)

    async def _notify(self, name: str, result: SyncResult) -> None:
        if self._push_on_change is not None:
            try:
                await _maybe_await(self._push_on_change(name, result))
            except Exception:
                log.exception("on_change callback failed")

    # ---- wipe -----------------------------------------------------------------------
    async def wipe_data(self, *, force: bool = False) -> None:
        """Forget the identity and all local data (the device id stays).

        Refuses with `UnsyncedChangesError` while unsynced changes exist, unless ``force``.
        """
        if not force and await self._run(self._store.has_unsynced_changes):
            raise UnsyncedChangesError(
                "local changes were never synced: call synchronize_all() first, or "
                "wipe_data(force=True) to discard them"
            )
        await self.stop_push_sync()
        await self._run(self._store.wipe)
        if self._backend is not None:
            await self._backend.close()
        self._backend, self._identity, self._logins = None, None, {}


async def _maybe_await(value: Any) -> Any:
    if isinstance(value, Awaitable):
        return await value
    return value


class Client:
    """The blocking facade of `AsyncClient`: same arguments, same methods, no ``await``.

    It runs an `AsyncClient` on a private event-loop thread; use `AsyncClient` from async
    code (calling a `Client` inside a running event loop raises `UsageError`).
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        db_path: str | Path | None = None,
        logins: dict[str, str] | None = None,
        identity_id: str | None = None,
        device_id: str | None = None,
        **options: Any,
    ) -> None:
        self._portal = Portal()
        try:
            self._async = self._portal.call(
                _construct(config, db_path, logins, identity_id, device_id, options)
            )
        except BaseException:
            self._portal.close()
            raise

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop push sync, close connections and the local store."""
        if self._portal.loop.is_closed():
            return
        try:
            self._portal.call(self._async.close())
        finally:
            self._portal.close()

    @property
    def async_client(self) -> AsyncClient:
        """The underlying `AsyncClient`."""
        return self._async

    @property
    def limits(self) -> Limits:
        """The limits this client enforces locally."""
        return self._async.limits

    @property
    def device_id(self) -> str:
        """This device's id."""
        return self._async.device_id

    @property
    def identity_id(self) -> str:
        """The identity id (obtained from Cognito Identity once, then cached)."""
        return self._portal.call(self._async.get_identity_id())

    def dataset(self, name: str) -> Dataset:
        """Open (creating locally if needed) the dataset ``name``."""
        return Dataset(self._portal.call(self._async.dataset(name)), self._portal)

    open_or_create_dataset = dataset

    def list_datasets(self) -> list[DatasetMetadata]:
        """The datasets kept on this device."""
        return self._portal.call(self._async.list_datasets())

    def refresh_dataset_metadata(self) -> list[DatasetMetadata]:
        """Fetch the server's dataset list (including datasets never opened here)."""
        return self._portal.call(self._async.refresh_dataset_metadata())

    def login(self, logins: dict[str, str], **kwargs: Any) -> str:
        """Switch to an authenticated identity; see `AsyncClient.login`."""
        return self._portal.call(self._async.login(logins, **kwargs))

    def synchronize(self, name: str, **callbacks: Any) -> SyncResult:
        """Sync one dataset; see `AsyncClient.synchronize`."""
        return self._portal.call(self._async.synchronize(name, **callbacks))

    def synchronize_all(self, **callbacks: Any) -> dict[str, SyncResult]:
        """Sync every dataset; name -> `SyncResult`."""
        return self._portal.call(self._async.synchronize_all(**callbacks))

    def synchronize_on_connectivity(self, name: str, **callbacks: Any) -> SyncResult | None:
        """Sync now if reachable, else in the background once the server is back."""
        return self._portal.call(self._async.synchronize_on_connectivity(name, **callbacks))

    def start_push_sync(self, on_change: OnChange | None = None, **kwargs: Any) -> None:
        """Keep a subscription open and sync datasets changed on other devices."""
        self._portal.call(self._async.start_push_sync(on_change, **kwargs))

    def stop_push_sync(self) -> None:
        """Close the push-sync subscription."""
        self._portal.call(self._async.stop_push_sync())

    def wipe_data(self, *, force: bool = False) -> None:
        """Forget the identity and local data; refuses with unsynced changes unless ``force``."""
        self._portal.call(self._async.wipe_data(force=force))


async def _construct(
    config: Config | None,
    db_path: str | Path | None,
    logins: dict[str, str] | None,
    identity_id: str | None,
    device_id: str | None,
    options: dict[str, Any],
) -> AsyncClient:
    return AsyncClient(
        config,
        db_path=db_path,
        logins=logins,
        identity_id=identity_id,
        device_id=device_id,
        **options,
    )
