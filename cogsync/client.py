"""`AsyncClient` (the real thing) and `Client` (its blocking facade).

A client owns one device's local store, knows (or learns) its Cognito identity, and
synchronizes datasets with a backend. Local reads and writes never touch the network;
every store call runs on one worker thread (the store's single writer), off the event loop.

Concurrency rules: syncs of different datasets run side by side (one at a time per
dataset); an identity change (first contact, login, wipe, close) waits for running syncs
and holds them off while it moves data, so no sync ever writes under a stale identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from cogsync._backoff import backoff_delays
from cogsync._blocking import Portal
from cogsync._gate import Gate
from cogsync.auth.cognito import CognitoIdentity
from cogsync.config import Config
from cogsync.dataset import AsyncDataset, Dataset
from cogsync.engine.conflicts import last_writer_wins
from cogsync.engine.driver import maybe_await, run_sync
from cogsync.engine.flow import sync_dataset
from cogsync.exceptions import (
    CogsyncError,
    ConfigError,
    OfflineError,
    UnsyncedChangesError,
    UsageError,
)
from cogsync.limits import DEFAULT_LIMITS, Limits, merged_dataset_name, validate_name
from cogsync.models import DatasetMetadata, SyncResult
from cogsync.push import PushScheduler
from cogsync.remote.base import RemoteBackend
from cogsync.store.base import LocalStore

__all__ = ["AsyncClient", "Client"]

log = logging.getLogger(__name__)
T = TypeVar("T")
OnChange = Callable[[str, SyncResult], Any]
DatasetsMerged = Callable[[str, list[str]], Any]


def _check_arguments(
    config: object, db_path: object, logins: object, identity_id: object, device_id: object
) -> None:
    if config is not None and not isinstance(config, Config):
        raise ConfigError(
            f"config must be a cogsync.Config, got {type(config).__name__}: "
            "use cogsync.Config.load('cogsync.json')"
        )
    if db_path is not None and not isinstance(db_path, str | os.PathLike):
        raise UsageError(f"db_path must be a file path, got {type(db_path).__name__}")
    if logins is not None and (
        not isinstance(logins, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in logins.items())
    ):
        raise UsageError("logins must map provider names to token strings")
    for name, value in (("identity_id", identity_id), ("device_id", device_id)):
        if value is not None and (not isinstance(value, str) or not value):
            raise UsageError(f"{name} must be a non-empty str")


def _open_store(db_path: str | os.PathLike[str] | None, limits: Limits) -> LocalStore:
    from cogsync.store.sqlite import SQLiteStore

    if db_path is None:
        raise ConfigError("Client needs db_path=... (the device's SQLite file)")
    try:
        return SQLiteStore(Path(db_path), limits=limits)
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(f"cannot open the device file {db_path}: {exc}") from exc


class AsyncClient:
    """An identity's datasets on this device, synced with a cogsync backend.

    Args:
        config: where the identity pool and GraphQL endpoints are (`Config.load`); None
            keeps the client local-only (sync raises `ConfigError`).
        db_path: the device's SQLite file (created if absent).
        logins: provider name -> token, for an authenticated identity. On first contact
            the device's data moves to that identity (a guest's data is merged as by `login`).
        identity_id: an identity id the app already has (old SDK cache, migration).
        device_id: override the store's generated device id.
        backend: a ready `RemoteBackend` (tests); None builds the GraphQL backend.
        store: a ready `LocalStore` (tests); None opens ``db_path`` with SQLite.
        limits: the local limits (Cognito Sync's by default).
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        db_path: str | os.PathLike[str] | None = None,
        logins: dict[str, str] | None = None,
        identity_id: str | None = None,
        device_id: str | None = None,
        backend: RemoteBackend | None = None,
        store: LocalStore | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        _check_arguments(config, db_path, logins, identity_id, device_id)
        self._store: LocalStore = store if store is not None else _open_store(db_path, limits)
        self._config = config
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cogsync-store")
        self._device_id = device_id or self._store.device_id()
        self._logins = dict(logins or {})
        self._logins_pending = bool(self._logins)
        self._identity_logins: dict[str, str] = {}  # logins of the current identity, if known
        known = self._store.identity_id()
        if identity_id is not None and identity_id != known:
            if known is not None and self._store.has_unsynced_changes():
                raise UsageError(
                    f"this device file holds unsynced changes of identity {known}: sync them "
                    "or call wipe_data() before opening it with another identity_id"
                )
            self._store.attach_identity(identity_id)
            known = identity_id
        self._identity_id = known
        self._owner_id = known or self._store.provisional_owner()
        self._backend = backend
        self._identity: CognitoIdentity | None = None
        self._gate = Gate()
        self._connect_lock = asyncio.Lock()
        self._locks: dict[str, asyncio.Lock] = {}
        self._push: Any = None
        self._scheduler: PushScheduler | None = None
        self._push_on_change: OnChange | None = None
        self._retry: dict[str, dict[str, Any]] = {}
        self._retry_task: asyncio.Task[None] | None = None
        self._limits_learned = False
        self._closing = False  # no new calls
        self._closed = False  # the store is closed

    # ---- context management -------------------------------------------------------
    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop push sync and background retries, wait for running syncs, close everything."""
        if self._closing:
            return
        self._closing = True
        await self._stop_background()
        async with self._gate.exclusive():  # running syncs finish first
            if self._backend is not None:
                await self._backend.close()
            self._closed = True
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._store.close)
        self._executor.shutdown(wait=True)

    async def _stop_background(self) -> None:
        await self.stop_push_sync()
        task, self._retry_task = self._retry_task, None
        self._retry.clear()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _check_open(self) -> None:
        if self._closing:
            raise UsageError("this client is closed; create a new one")

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
        """The identity id, once known (cached in the local store); None before first contact.

        `get_identity_id` asks the server when it is not known yet.
        """
        return self._identity_id

    def _owner(self) -> str:
        return self._owner_id

    def _set_owner(self, identity_id: str | None) -> None:
        self._identity_id = identity_id
        self._owner_id = identity_id or self._store.provisional_owner()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise UsageError("this client is closed; create a new one")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def dataset(self, name: str) -> AsyncDataset:
        """Open (creating locally if needed) the dataset ``name``."""
        validate_name(name, self.limits)
        await self._run(self._store.create_dataset, self._owner(), name)
        return AsyncDataset(self, name)

    open_or_create_dataset = dataset

    async def list_datasets(self) -> list[DatasetMetadata]:
        """The datasets kept on this device (not those pending deletion)."""
        return await self._run(self._list_datasets_blocking, self._owner())

    def _list_datasets_blocking(self, owner: str) -> list[DatasetMetadata]:
        result = []
        for state in self._store.list_datasets(owner):
            if state.deleted_pending:
                continue
            records = self._store.get_records(owner, state.name)
            result.append(
                DatasetMetadata(
                    name=state.name,
                    sync_count=state.last_sync_count,
                    size_in_bytes=self._store.size_in_bytes(owner, state.name),
                    record_count=sum(1 for r in records.values() if r.value is not None),
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
                logins=self._identity_logins or None,
                identity_id=self._identity_id,
            )
        return self._identity

    async def get_identity_id(self) -> str:
        """The identity id, asking Cognito Identity (GetId) the first time.

        Data written before the identity was known moves to it here.
        """
        if self._identity_id is None or self._logins_pending:
            await self._connect()
        assert self._identity_id is not None
        return self._identity_id

    async def _connect(self) -> RemoteBackend:
        """Make sure the identity is known and a backend exists; return the backend."""
        self._check_open()
        async with self._connect_lock:
            if self._logins_pending:
                await self._switch_identity(self._logins)
            if self._identity_id is None:
                identity_id = await self._cognito().get_identity_id()
                async with self._gate.exclusive():
                    await self._run(self._store.attach_identity, identity_id)
                    self._set_owner(identity_id)
            if self._backend is None:
                from cogsync.remote.graphql import GraphQLBackend

                self._backend = GraphQLBackend(self._require_config(), self._cognito())
            if not self._limits_learned:
                await self._learn_limits(self._backend)
            return self._backend

    async def _learn_limits(self, backend: RemoteBackend) -> None:
        """Adopt the limits the server announces, so both sides enforce the same ones."""
        info = await backend.server_info()
        self._store.limits = dataclasses.replace(
            self._store.limits,
            max_datasets=info.max_datasets,
            max_records=info.max_records,
            max_dataset_bytes=info.max_dataset_bytes,
            max_key_bytes=info.max_key_bytes,
        )
        self._limits_learned = True

    async def login(
        self, logins: dict[str, str], *, on_datasets_merged: DatasetsMerged | None = None
    ) -> str:
        """Switch to the authenticated identity of ``logins``; return its identity id.

        A guest's datasets move to the new identity; if that identity already holds data
        they are kept as ``<name>.<guestIdentityId>`` and ``on_datasets_merged(name,
        [merged])`` is called for each. Switching from one authenticated identity to another
        leaves the first one's data under it, untouched. Nothing is dropped.
        """
        _check_arguments(None, None, logins, None, None)
        if not logins:
            raise UsageError("login() needs at least one provider token")
        self._check_open()
        restart = self._push is not None
        try:
            async with self._connect_lock:
                identity_id, merged = await self._switch_identity(dict(logins))
        finally:
            if restart and not self._closing:
                await self.start_push_sync(self._push_on_change)
        if on_datasets_merged is not None:
            for name, names in merged.items():
                await maybe_await(on_datasets_merged(name, names))
        return identity_id

    async def _switch_identity(self, logins: dict[str, str]) -> tuple[str, dict[str, list[str]]]:
        from cogsync.remote.graphql import GraphQLBackend

        config = self._require_config()
        fresh = CognitoIdentity(config, logins=logins)
        new_id = await fresh.get_identity_id()
        new_backend = GraphQLBackend(config, fresh)
        old_owner = self._owner_id
        merged: dict[str, list[str]] = {}
        try:
            if self._identity_id is None:
                mode = "attach"
            elif new_id == old_owner:
                mode = "same"
            elif self._identity_logins:
                mode = "switch"
            else:
                remote = await new_backend.list_datasets()
                local = await self._run(self._store.list_datasets, new_id)
                has_data = any(not d.deleted for d in remote) or bool(local)
                mode = "merge" if has_data else "move"
            await self.stop_push_sync()
            async with self._gate.exclusive():
                merged = await self._run(self._move_identity, old_owner, new_id, mode)
                self._set_owner(new_id)
        except BaseException:
            await new_backend.close()
            raise
        old_backend = self._backend
        self._backend, self._identity = new_backend, fresh
        self._logins, self._identity_logins, self._logins_pending = (
            dict(logins),
            dict(logins),
            False,
        )
        if old_backend is not None:
            await old_backend.close()
        return new_id, merged

    def _move_identity(self, old: str, new: str, mode: str) -> dict[str, list[str]]:
        """Move this device's data from owner ``old`` to ``new`` (runs on the store thread)."""
        store = self._store
        if mode == "attach":
            store.attach_identity(new)
            return {}
        if mode in ("same", "switch"):
            store.set_identity_id(new)
            return {}
        plan = []
        for state in store.list_datasets(old):
            if state.deleted_pending:
                continue
            target = state.name
            if mode == "merge":
                target = merged_dataset_name(state.name, old, self.limits)
            plan.append((state.name, validate_name(target, self.limits)))
        taken = {s.name for s in store.list_datasets(new)}
        clash = [target for _, target in plan if target in taken]
        if clash:
            raise UsageError(
                f"cannot merge: datasets {clash} already exist for identity {new} on this device"
            )
        for name, target in plan:
            store.rename_dataset(old, name, new, target)
        store.set_identity_id(new)
        return {name: [target] for name, target in plan} if mode == "merge" else {}

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

        Args:
            name: the dataset.
            on_conflict: ``(dataset_name, conflicts) -> list[Resolution]``.
            on_dataset_deleted: ``(dataset_name) -> bool``; True drops the local copy of a
                dataset deleted elsewhere, False keeps it and recreates it on the server.
            on_datasets_merged: ``(dataset_name, merged_names) -> bool``.
            max_retries: rejected pushes re-planned before giving up with `ConflictError`.

        Always ends in a `SyncResult` or a typed error (`OfflineError` leaves local data
        intact; `ConflictError` after ``max_retries`` rejected pushes).
        """
        validate_name(name, self.limits)
        await self._connect()
        async with self._gate.shared():
            backend = self._backend
            if backend is None or self._closed:
                raise UsageError("the client was wiped or closed during synchronize(); retry")
            owner = self._owner_id
            lock = self._locks.setdefault(name, asyncio.Lock())
            async with lock:
                flow = sync_dataset(name, device_id=self._device_id, max_retries=max_retries)
                return await run_sync(
                    flow,
                    store=self._store,
                    owner=owner,
                    backend=backend,
                    on_conflict=on_conflict,
                    on_dataset_deleted=on_dataset_deleted,
                    on_datasets_merged=on_datasets_merged,
                    run_blocking=self._run,
                )

    async def refresh_dataset_metadata(self) -> list[DatasetMetadata]:
        """Fetch the server's dataset list; datasets this device never opened are added locally."""
        backend = await self._connect()
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

    async def synchronize_all(
        self, *, concurrency: int = 4, **callbacks: Any
    ) -> dict[str, SyncResult]:
        """Sync every local dataset and every dataset the server knows; name -> result.

        Up to ``concurrency`` datasets sync at once (their network, server and store work
        overlap). Every dataset is tried even if one fails; then the first error is raised
        with ``error.results`` (the datasets that synced) and ``error.errors`` (name -> error).
        """
        await self.refresh_dataset_metadata()
        states = await self._run(self._store.list_datasets, self._owner())
        results: dict[str, SyncResult] = {}
        errors: dict[str, Exception] = {}
        slots = asyncio.Semaphore(max(1, concurrency))

        async def one(name: str) -> None:
            async with slots:
                try:
                    results[name] = await self.synchronize(name, **callbacks)
                except Exception as exc:  # every dataset is tried; errors are reported below
                    errors[name] = exc

        await asyncio.gather(*(one(state.name) for state in states))
        results = {s.name: results[s.name] for s in states if s.name in results}
        if errors:
            first = next(errors[s.name] for s in states if s.name in errors)
            first.results = results  # type: ignore[attr-defined]
            first.errors = errors  # type: ignore[attr-defined]
            raise first
        return results

    async def synchronize_on_connectivity(self, name: str, **callbacks: Any) -> SyncResult | None:
        """Sync now if the server is reachable; else retry in the background until it is.

        Returns the result, or None when the sync was deferred.
        """
        try:
            return await self.synchronize(name, **callbacks)
        except OfflineError:
            self._retry[name] = callbacks
            if self._retry_task is None or self._retry_task.done():
                self._retry_task = asyncio.create_task(self._retry_until_online())
            return None

    async def _retry_until_online(self) -> None:
        for delay in backoff_delays(initial=0.5, maximum=30.0):
            await asyncio.sleep(delay)
            for name, callbacks in list(self._retry.items()):
                try:
                    await self.synchronize(name, **callbacks)
                except OfflineError:
                    break
                except Exception:
                    log.exception("deferred sync of %s failed; not retried", name)
                self._retry.pop(name, None)
            if not self._retry:
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

        self._check_open()
        if self._push is not None:
            return
        identity_id = await self.get_identity_id()
        self._check_open()
        self._push_on_change = on_change
        self._scheduler = PushScheduler(self._push_sync_one, debounce=debounce)
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
        scheduler, self._scheduler = self._scheduler, None
        if push is not None:
            await push.stop()
        if scheduler is not None:
            await scheduler.close()

    async def _on_push_connect(self) -> None:
        try:
            results = await self.synchronize_all()
        except CogsyncError as exc:
            log.warning("catch-up sync after (re)connect failed: %s", exc)
            results = getattr(exc, "results", {})
        for name, result in results.items():
            await self._notify(name, result)

    async def _on_remote_change(self, name: str, sync_count: int, deleted: bool) -> None:
        if self._scheduler is not None:
            self._scheduler.poke(name)

    async def _push_sync_one(self, name: str) -> None:
        result = await self.synchronize(name)
        await self._notify(name, result)

    async def _notify(self, name: str, result: SyncResult) -> None:
        if self._push_on_change is not None:
            try:
                await maybe_await(self._push_on_change(name, result))
            except Exception:
                log.exception("on_change callback failed")

    # ---- wipe -----------------------------------------------------------------------
    async def wipe_data(self, *, force: bool = False) -> None:
        """Forget the identity and all local data (the device id stays).

        Refuses with `UnsyncedChangesError` while unsynced changes exist, unless ``force``.
        """
        self._check_open()

        def wipe() -> None:
            if not force and self._store.has_unsynced_changes():
                raise UnsyncedChangesError(
                    "local changes were never synced: call synchronize_all() first, or "
                    "wipe_data(force=True) to discard them"
                )
            self._store.wipe()

        if not force and await self._run(self._store.has_unsynced_changes):
            wipe()  # raises the error without touching anything
        async with self._connect_lock:
            await self._stop_background()
            async with self._gate.exclusive():
                await self._run(wipe)
                self._set_owner(None)
            backend, self._backend = self._backend, None
            if backend is not None:
                await backend.close()
            self._identity, self._logins, self._identity_logins = None, {}, {}
            self._logins_pending = False


def _off_loop(callback: Any) -> Any:
    """Run a blocking-API callback in a worker thread, so it may call the `Client` again."""
    if callback is None or asyncio.iscoroutinefunction(callback) or not callable(callback):
        return callback

    async def call(*args: Any) -> Any:
        return await asyncio.to_thread(callback, *args)

    return call


def _off_loop_all(callbacks: dict[str, Any]) -> dict[str, Any]:
    return {name: _off_loop(cb) for name, cb in callbacks.items()}


class Client:
    """The blocking facade of `AsyncClient`: same arguments, same methods, no ``await``.

    It runs an `AsyncClient` on a private event-loop thread; use `AsyncClient` from async
    code (calling a `Client` inside a running event loop raises `UsageError`). Callbacks
    run in a worker thread, so they may read and write datasets; they must not call
    `synchronize`, `login` or `wipe_data` (the sync that called them is still running).
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        db_path: str | os.PathLike[str] | None = None,
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

    def login(
        self, logins: dict[str, str], *, on_datasets_merged: DatasetsMerged | None = None
    ) -> str:
        """Switch to an authenticated identity; see `AsyncClient.login`."""
        merged = _off_loop(on_datasets_merged)
        return self._portal.call(self._async.login(logins, on_datasets_merged=merged))

    def synchronize(self, name: str, **callbacks: Any) -> SyncResult:
        """Sync one dataset; see `AsyncClient.synchronize`."""
        return self._portal.call(self._async.synchronize(name, **_off_loop_all(callbacks)))

    def synchronize_all(self, **callbacks: Any) -> dict[str, SyncResult]:
        """Sync every dataset; name -> `SyncResult`."""
        return self._portal.call(self._async.synchronize_all(**_off_loop_all(callbacks)))

    def synchronize_on_connectivity(self, name: str, **callbacks: Any) -> SyncResult | None:
        """Sync now if reachable, else in the background once the server is back."""
        coro = self._async.synchronize_on_connectivity(name, **_off_loop_all(callbacks))
        return self._portal.call(coro)

    def start_push_sync(self, on_change: OnChange | None = None, **kwargs: Any) -> None:
        """Keep a subscription open and sync datasets changed on other devices."""
        self._portal.call(self._async.start_push_sync(_off_loop(on_change), **kwargs))

    def stop_push_sync(self) -> None:
        """Close the push-sync subscription."""
        self._portal.call(self._async.stop_push_sync())

    def wipe_data(self, *, force: bool = False) -> None:
        """Forget the identity and local data; refuses with unsynced changes unless ``force``."""
        self._portal.call(self._async.wipe_data(force=force))


async def _construct(
    config: Config | None,
    db_path: str | os.PathLike[str] | None,
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
