"""`AsyncClient`: the async core of cogsync (its blocking facade is `cogsync.blocking`).

A client owns one device's local store, knows (or learns, via `cogsync.identity`) its
Cognito identity, and synchronizes datasets with a backend. Local reads and writes never
touch the network; every store call runs on one worker thread (the store's single
writer), off the event loop.

Concurrency rules: syncs of different datasets run side by side (one at a time per
dataset); an identity change (first contact, login, wipe, close) waits for running syncs
and holds them off while it moves data, so no sync ever writes under a stale identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import Any, TypedDict, TypeVar, overload

from pydantic import BaseModel

from cogsync._arguments import check_arguments, open_store
from cogsync._backoff import backoff_delays
from cogsync._callbacks import maybe_await
from cogsync._closing import AsyncClosing
from cogsync._gate import Gate
from cogsync._store_thread import StoreThread
from cogsync._tasks import cancel_and_wait
from cogsync.auto_sync import AutoSync, sync_each
from cogsync.config import Config
from cogsync.dataset import AsyncDataset, LocalView, SyncEntryPoints, list_metadata
from cogsync.driver import run_sync
from cogsync.engine.conflicts import last_writer_wins
from cogsync.engine.flow import sync_dataset
from cogsync.events import ChangeEvent, ChangeStream, Subscription
from cogsync.exceptions import (
    CogsyncError,
    OfflineError,
    SyncAllError,
    UnsyncedChangesError,
    UsageError,
)
from cogsync.identity import ClientIdentity, Logins, require_config
from cogsync.limits import DEFAULT_LIMITS, Limits, validate_name
from cogsync.live import LiveState, OnApplied, SyncObserver
from cogsync.models import DatasetMetadata, SyncResult
from cogsync.progress import OnProgress, chain, progress_observer
from cogsync.push import PushScheduler
from cogsync.remote.base import RemoteBackend
from cogsync.status import ClientStatus
from cogsync.store.base import LocalStore
from cogsync.sync_all import plan_sync_all, run_sync_all
from cogsync.typed.dataset import AsyncTypedDataset, AsyncTypedRecords, RecordModel, typed_view

__all__ = ["AsyncClient", "ClientOptions", "DatasetsMerged", "OnChange"]

log = logging.getLogger(__name__)
_M = TypeVar("_M", bound=BaseModel)
_I = TypeVar("_I", bound=BaseModel)
OnChange = Callable[[str, SyncResult], Any]
DatasetsMerged = Callable[[str, list[str]], Any]


class ClientOptions(TypedDict, total=False):
    """The keyword arguments of `AsyncClient` (and `cogsync.Client`)."""

    db_path: str | os.PathLike[str] | None
    logins: Logins | None
    identity_id: str | None
    device_id: str | None
    backend: RemoteBackend | None
    store: LocalStore | None
    limits: Limits


class AsyncClient(AsyncClosing):
    """An identity's datasets on this device, synced with a cogsync backend.

    Args:
        config: where the identity pool and GraphQL endpoints are (`Config.load`); None
            keeps the client local-only (sync raises `ConfigError`).
        db_path: the device's SQLite file (created if absent).
        logins: provider name -> token, for an authenticated identity. On first contact a
            guest's data moves to it (as by `login`); another authenticated identity's data
            stays that identity's, and is out of sight from the start. May be a function
            (plain or coroutine) returning them: it is called at first contact and again
            whenever the identity service refuses them (expired, invalid); the call is
            retried once with the new ones, and a second refusal is a `NotAuthorizedError`.
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
        logins: Logins | None = None,
        identity_id: str | None = None,
        device_id: str | None = None,
        backend: RemoteBackend | None = None,
        store: LocalStore | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        check_arguments(config, db_path, logins, identity_id, device_id)
        self._store: LocalStore = open_store(db_path, limits, device_id, store)
        self._config = config
        self._thread = StoreThread()
        self._device_id = device_id or self._store.device_id()
        self._gate = Gate()
        self._identity = ClientIdentity(
            config,
            self._store,
            self._thread.run,
            self._gate,
            before_switch=self.stop_push_sync,
            logins=logins,
            identity_id=identity_id,
            backend=backend,
        )
        view = LocalView(self._store, lambda: self._identity.owner, self._thread.run)
        self._live = LiveState(view, device_id=self._device_id)
        self._local = replace(view, on_write=self._on_local_write)
        self._entry_points = SyncEntryPoints(
            self.synchronize, self.synchronize_on_connectivity, self._live.dataset_status
        )
        self._locks: dict[str, asyncio.Lock] = {}
        self._push: Any = None
        self._scheduler: PushScheduler | None = None
        self._push_on_change: OnChange | None = None
        self._push_datasets: frozenset[str] | None = None
        self._auto: AutoSync | None = None
        self._auto_callbacks: dict[str, Any] = {}
        self._retry: dict[str, dict[str, Any]] = {}
        self._retry_task: asyncio.Task[None] | None = None
        self._closing = False  # no new calls
        with contextlib.suppress(RuntimeError):  # no running loop: starts with the first call
            self._live.start()

    # ---- context management ---------------------------------------------------------
    async def close(self) -> None:
        """Stop push sync and background retries, wait for running syncs, close everything."""
        if self._closing:
            return
        self._closing = True
        await self._stop_background()
        await self._live.aclose()
        async with self._gate.exclusive():  # running syncs finish first
            backend = self._identity.backend
            if backend is not None:
                await backend.close()
            await self._thread.close_store(self._store.close)
        self._thread.shutdown()

    async def _stop_background(self) -> None:
        await self.stop_auto_sync()
        await self.stop_push_sync()
        task, self._retry_task = self._retry_task, None
        self._retry.clear()
        if task is not None:
            await cancel_and_wait(task)

    def _check_open(self) -> None:
        if self._closing:
            raise UsageError("this client is closed; create a new one")
        self._live.start()

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
        return self._identity.identity_id

    @overload
    async def dataset(self, name: str) -> AsyncDataset: ...
    @overload
    async def dataset(self, name: str, model: type[_M]) -> AsyncTypedDataset[_M]: ...
    @overload
    async def dataset(self, name: str, model: RecordModel[_I]) -> AsyncTypedRecords[_I]: ...

    async def dataset(
        self, name: str, model: type[_M] | RecordModel[_I] | None = None
    ) -> AsyncDataset | AsyncTypedDataset[_M] | AsyncTypedRecords[_I]:
        """Open (creating locally if needed) the dataset ``name``.

        With ``model`` (a pydantic model class, or ``record_model(Item)``), the dataset is
        read and written as models: see `cogsync.typed.dataset`.
        """
        validate_name(name, self.limits)
        await self._local.write(self._store.create_dataset, name)
        dataset = AsyncDataset(name, self._local, self._entry_points)
        return dataset if model is None else typed_view(dataset, model)

    open_or_create_dataset = dataset

    async def list_datasets(self) -> list[DatasetMetadata]:
        """The datasets kept on this device (not those pending deletion)."""
        return await self._local.read(list_metadata, self._store)

    # ---- identity -------------------------------------------------------------------
    async def get_identity_id(self) -> str:
        """The identity id, asking Cognito Identity (GetId) the first time.

        Data written before the identity was known moves to it here.
        """
        if self._identity.needs_contact:
            await self._connect()
        identity_id = self._identity.identity_id
        assert identity_id is not None
        return identity_id

    async def _connect(self) -> RemoteBackend:
        """Make sure the identity is known and a backend exists; return the backend."""
        self._check_open()
        return await self._identity.connect()

    async def login(
        self, logins: Logins, *, on_datasets_merged: DatasetsMerged | None = None
    ) -> str:
        """Switch to the authenticated identity of ``logins``; return its identity id.

        A guest's datasets move to the new identity; if that identity already holds data
        they are kept as ``<name>.<guestIdentityId>`` and ``on_datasets_merged(name,
        [merged])`` is called for each. Switching from one authenticated identity to another
        leaves the first one's data under it, unsynced edits included, unseen by the new
        one; it syncs when the first logs in again. Nothing is dropped.

        Raises:
            IdentityConflictError: another process switched the device file meanwhile.
        """
        check_arguments(None, None, logins, None, None)
        if not logins:
            raise UsageError("login() needs at least one provider token")
        self._check_open()
        restart = self._push is not None
        try:
            identity_id, merged = await self._identity.login(logins)
        finally:
            if restart and not self._closing:
                await self.start_push_sync(self._push_on_change, self._push_datasets)
        if on_datasets_merged is not None:
            for name, names in merged.items():
                await maybe_await(on_datasets_merged(name, names))
        return identity_id

    # ---- sync -----------------------------------------------------------------------
    async def synchronize(
        self,
        name: str,
        *,
        on_conflict: Callable[..., Any] = last_writer_wins,
        on_dataset_deleted: Callable[[str], Any] | None = None,
        on_datasets_merged: Callable[[str, list[str]], Any] | None = None,
        max_retries: int = 5,
        on_progress: OnProgress | None = None,
    ) -> SyncResult:
        """Reconcile dataset ``name`` with the server: pull, resolve conflicts, push.

        Args:
            name: the dataset.
            on_conflict: ``(dataset_name, conflicts) -> list[Resolution]``.
            on_dataset_deleted: ``(dataset_name) -> bool``; True drops the local copy of a
                dataset deleted elsewhere, False keeps it and recreates it on the server.
            on_datasets_merged: ``(dataset_name, merged_names) -> bool``.
            max_retries: rejected pushes re-planned before giving up with `ConflictError`.
            on_progress: ``(SyncProgress) -> None``, called per page pulled and batch pushed.

        Always ends in a `SyncResult` or a typed error (`OfflineError` leaves local data
        intact; `ConflictError` after ``max_retries`` rejected pushes).
        """
        return await self._synchronize(
            name,
            on_conflict=on_conflict,
            on_dataset_deleted=on_dataset_deleted,
            on_datasets_merged=on_datasets_merged,
            max_retries=max_retries,
            on_progress=on_progress,
        )

    async def _synchronize(
        self, name: str, unknown_to_server: bool = False, **callbacks: Any
    ) -> SyncResult:
        validate_name(name, self.limits)
        callbacks["unknown_to_server"] = unknown_to_server
        return await self._live.track(name, functools.partial(self._sync, name, callbacks))

    async def _sync(
        self, name: str, callbacks: dict[str, Any], observe: SyncObserver, on_applied: OnApplied
    ) -> SyncResult:
        await self._connect()
        async with self._gate.shared():
            backend = self._identity.backend
            if backend is None or self._thread.closed:
                raise UsageError("the client was wiped or closed during synchronize(); retry")
            owner = await self._thread.run(self._identity.synced_owner)
            lock = self._locks.setdefault(name, asyncio.Lock())
            async with lock:
                retries = callbacks.pop("max_retries", 5)
                on_progress = callbacks.pop("on_progress", None)
                if on_progress is not None:
                    observe = chain(observe, await progress_observer(name, on_progress, backend))
                flow = sync_dataset(
                    name,
                    device_id=self._device_id,
                    max_retries=retries,
                    unknown_to_server=callbacks.pop("unknown_to_server"),
                )
                return await run_sync(
                    flow,
                    store=self._store,
                    owner=owner,
                    backend=backend,
                    run_blocking=self._thread.run,
                    observe=observe,
                    on_applied=on_applied,
                    **callbacks,
                )

    async def refresh_dataset_metadata(self) -> list[DatasetMetadata]:
        """Fetch the server's dataset list; datasets this device never opened are added locally."""
        backend = await self._connect()
        remote = await backend.list_datasets()
        store, synced_owner = self._store, self._identity.synced_owner

        def add_missing() -> None:
            with store.transaction():
                owner = synced_owner()
                local = {s.name for s in store.list_datasets(owner)}
                for ds in remote:
                    if not ds.deleted and ds.name not in local:
                        store.create_dataset(owner, ds.name)

        await self._thread.run(add_missing)
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
        overlap). A dataset the server lists at the sync count this device last stored,
        with nothing to push, is not asked for again (see `plan_sync_all`). Every dataset
        is tried even if one fails; then a `SyncAllError` is raised with ``error.results``
        (the datasets that synced) and ``error.errors`` (name -> error); it is also an
        instance of the first failure's class (``except OfflineError`` catches an offline
        run).
        """
        remote = await self.refresh_dataset_metadata()
        plan = await self._local.read(plan_sync_all, self._store, remote)
        board = self._live.board
        for name, sync_count in plan.settled.items():  # nothing to pull or push: no request
            board.set_counts(name, 0, sync_count)
            board.sync_succeeded(name)
        return await run_sync_all(
            plan,
            lambda name: self._synchronize(name, name in plan.unknown, **callbacks),
            concurrency,
            self._identity.backend,
        )

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
        self,
        on_change: OnChange | None = None,
        datasets: Collection[str] | None = None,
        *,
        debounce: float = 0.05,
    ) -> None:
        """Keep a subscription open; sync a dataset when another device changes it.

        A notification only schedules a (debounced) sync; after every (re)connect all
        datasets are synced so that nothing missed while disconnected is lost.
        ``on_change(dataset_name, result)`` is called after each such sync; ``datasets``
        limits push sync to those names.
        """
        from cogsync.remote.subscription import DatasetChangeSubscription

        self._check_open()
        if self._push is not None:
            return
        names = None if datasets is None else frozenset(validate_name(n) for n in datasets)
        identity_id = await self.get_identity_id()
        self._check_open()
        self._push_on_change, self._push_datasets = on_change, names
        self._scheduler = PushScheduler(self._push_sync_one, debounce=debounce)
        self._push = DatasetChangeSubscription(
            require_config(self._config),
            self._identity.cognito(),
            identity_id,
            on_change=self._on_remote_change,
            on_connect=self._on_push_connect,
            on_error=self._on_push_error,
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
        self._live.set_online(True)
        try:
            results = await self._sync_some(self._push_datasets)
        except CogsyncError as exc:
            if isinstance(exc, SyncAllError) and not isinstance(exc.__cause__, CogsyncError):
                raise  # a failure outside cogsync's errors is not a failed catch-up
            if not self._closing:
                log.warning("catch-up sync after (re)connect failed: %s", exc)
            results = exc.results if isinstance(exc, SyncAllError) else {}
        for name, result in results.items():
            await self._notify(name, result)

    async def _on_push_error(self, error: CogsyncError) -> None:
        if isinstance(error, OfflineError):
            self._live.set_online(False)

    async def _on_remote_change(self, name: str, sync_count: int, deleted: bool) -> None:
        if self._closing or (self._push_datasets is not None and name not in self._push_datasets):
            return
        if not deleted and sync_count <= self._live.board.dataset(name).sync_count:
            return  # this device's own push, already applied
        if self._auto is not None:
            self._auto.poked(name)
        elif self._scheduler is not None:
            self._scheduler.poke(name)

    async def _push_sync_one(self, name: str) -> None:
        result = await self.synchronize(name, **self._auto_callbacks)
        await self._notify(name, result)

    async def _notify(self, name: str, result: SyncResult) -> None:
        if self._push_on_change is not None:
            try:
                await maybe_await(self._push_on_change(name, result))
            except Exception:
                log.exception("on_change callback failed")

    async def _sync_some(self, names: frozenset[str] | None) -> dict[str, SyncResult]:
        """`synchronize_all`, or only ``names``, with the auto-sync callbacks."""
        if names is None:
            return await self.synchronize_all(**self._auto_callbacks)
        return await sync_each(names, lambda name: self.synchronize(name, **self._auto_callbacks))

    # ---- live use -------------------------------------------------------------------
    async def start_auto_sync(
        self,
        *,
        debounce: float = 1.0,
        interval: float = 300.0,
        on_conflict: Callable[..., Any] = last_writer_wins,
        on_dataset_deleted: Callable[[str], Any] | None = None,
        on_datasets_merged: Callable[[str, list[str]], Any] | None = None,
        datasets: Collection[str] | None = None,
    ) -> None:
        """Sync in the background until `stop_auto_sync` or `close`.

        A local write syncs its dataset after ``debounce`` quiet seconds (writes coalesce), a
        change on another device syncs it at once (push sync), and every ``interval``
        seconds and after every reconnect all datasets sync. While the server is
        unreachable, retries back off (capped, jittered). ``datasets`` limits all of it to
        those names; the callbacks work as in `synchronize`.
        """
        self._check_open()
        if self._auto is not None:
            raise UsageError("auto sync is already running; call stop_auto_sync() first")
        names = None if datasets is None else frozenset(validate_name(n) for n in datasets)
        self._auto_callbacks = {
            "on_conflict": on_conflict,
            "on_dataset_deleted": on_dataset_deleted,
            "on_datasets_merged": on_datasets_merged,
        }
        self._auto = AutoSync(
            lambda name: self.synchronize(name, **self._auto_callbacks),
            lambda: self._sync_some(names),
            debounce=debounce,
            interval=interval,
            datasets=names,
        )
        push = None if self._push is not None else lambda: self.start_push_sync(datasets=names)
        self._auto.start(push, on_offline=lambda: self._live.set_online(False))
        self._live.board.set_auto_sync(True)

    async def stop_auto_sync(self) -> None:
        """Stop background sync (no-op if not running); a running sync finishes first."""
        auto, self._auto = self._auto, None
        if auto is not None and await auto.close():
            await self.stop_push_sync()
        self._auto_callbacks = {}
        self._live.board.set_auto_sync(False)

    async def _on_local_write(self, name: str, keys: tuple[str, ...]) -> None:
        await self._live.local_write(name, keys)
        if self._auto is not None:
            self._auto.written(name)

    async def status(self) -> ClientStatus:
        """Whether the server answers, whether auto sync runs, and each dataset's state."""
        return await self._live.status()

    def on_change(self, callback: Callable[[ChangeEvent], Any]) -> Subscription:
        """Call ``callback(event)`` for every `ChangeEvent`, until ``.cancel()``."""
        return self._live.changes.add(callback)

    def changes(self) -> ChangeStream[ChangeEvent]:
        """An async iterator of the `ChangeEvent`s from now on (ends when the client closes)."""
        return self._live.changes.stream()

    def on_status(self, callback: Callable[[ClientStatus], Any]) -> Subscription:
        """Call ``callback(status)`` whenever a status field changes, until ``.cancel()``."""
        return self._live.board.listeners.add(callback)

    # ---- wipe -----------------------------------------------------------------------
    async def wipe_data(self, *, force: bool = False) -> None:
        """Forget the identity and all local data (the device id stays).

        Refuses with `UnsyncedChangesError` while unsynced changes exist, unless ``force``.
        """
        self._check_open()

        def wipe() -> RemoteBackend | None:
            if not force and self._store.has_unsynced_changes():
                raise UnsyncedChangesError(
                    "local changes were never synced: call synchronize_all() first (changes "
                    "of another identity that used this device sync when it logs in here "
                    "again), or wipe_data(force=True) to discard them"
                )
            self._store.wipe()
            return self._identity.forget()  # in the same job: later calls see no identity

        if not force and await self._thread.run(self._store.has_unsynced_changes):
            wipe()  # raises the error without touching anything
        async with self._identity.lock:
            await self._stop_background()
            async with self._gate.exclusive():
                backend = await self._thread.run(wipe)
            if backend is not None:
                await backend.close()
