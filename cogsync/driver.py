"""The asyncio driver of the sans-I/O sync engine: executes a flow's commands for real.

`run_sync` drives a `cogsync.engine.flow.sync_dataset` generator: store commands run
through ``run_blocking`` (the store's single writer thread, so SQLite never blocks the
event loop), remote commands are awaited on the `RemoteBackend`, callback commands ask the
app (plain functions or coroutine functions). A command's failure is thrown into the flow,
which decides whether to retry; what the flow does not handle propagates unchanged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

from cogsync._callbacks import maybe_await
from cogsync._store_thread import RunBlocking
from cogsync.engine import commands
from cogsync.engine.conflicts import last_writer_wins
from cogsync.exceptions import OfflineError, UsageError
from cogsync.models import Conflict, LocalRecords, Resolution, SyncResult
from cogsync.remote.base import RemoteBackend
from cogsync.store.base import LocalStore

__all__ = [
    "OnApplied",
    "OnConflict",
    "OnDatasetDeleted",
    "OnDatasetsMerged",
    "RunBlocking",
    "run_sync",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

OnConflict = Callable[[str, list[Conflict]], list[Resolution] | Awaitable[list[Resolution]]]
OnDatasetDeleted = Callable[[str], bool | Awaitable[bool]]
OnDatasetsMerged = Callable[[str, list[str]], bool | Awaitable[bool]]


async def _call_directly(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


def _read(
    store: LocalStore, owner: str, name: str, only: frozenset[str] | None
) -> commands.LocalSnapshot:
    state = store.get_dataset(owner, name)
    if only is None:
        records = store.get_records(owner, name)
        return commands.LocalSnapshot(state, records, store.get_bases(owner, name))
    records = store.get_records(owner, name, keys=only) if only else {}
    dirty = store.dirty_records(owner, name)
    records.update((record.key, record) for record in dirty)
    bases = store.get_bases(owner, name) if dirty else {}
    # As rows: the snapshot of a push lives as long as its request.
    return commands.LocalSnapshot(state, LocalRecords(records.values()), bases, complete=False)


def _read_for_push(
    store: LocalStore, owner: str, name: str, only: frozenset[str] | None
) -> commands.LocalSnapshot:
    """`_read`, the never-synced dirty records noted as sent first, in one transaction (no
    app write falls between what a push carries and the note)."""
    with store.transaction():
        new = [r.key for r in store.dirty_records(owner, name) if r.sync_count == 0]
        if new:
            store.mark_sent(owner, name, new)
        return _read(store, owner, name, only)


OnApplied = Callable[[LocalStore, str, commands.ApplySync, list[str]], None]
"""``(store, owner, command, skipped keys)``, called where an `ApplySync` was applied."""


def _apply(
    store: LocalStore, owner: str, command: commands.ApplySync, then: OnApplied | None
) -> list[str]:
    skipped = store.apply_sync(
        owner,
        command.dataset,
        command.writes,
        last_sync_count=command.last_sync_count,
        clear_deleted_pending=command.clear_deleted_pending,
        reset_sync_counts=command.reset_sync_counts,
    )
    if then is not None:
        then(store, owner, command, skipped)
    return skipped


async def run_sync(
    flow: Generator[commands.Command[Any], Any, SyncResult],
    *,
    store: LocalStore,
    owner: str,
    backend: RemoteBackend,
    on_conflict: OnConflict = last_writer_wins,
    on_dataset_deleted: OnDatasetDeleted | None = None,
    on_datasets_merged: OnDatasetsMerged | None = None,
    run_blocking: RunBlocking | None = None,
    new_request_id: Callable[[], str] | None = None,
    observe: Callable[[commands.Command[Any], Any], Any] | None = None,
    on_applied: OnApplied | None = None,
) -> SyncResult:
    """Execute ``flow`` against ``store`` (data of ``owner``) and ``backend``.

    Args:
        flow: a fresh `sync_dataset` generator.
        store: the device's local store.
        owner: whose data in ``store`` is synced (the identity id).
        backend: the server, as the identity sees it.
        on_conflict: the resolver (see `cogsync.engine.conflicts`).
        on_dataset_deleted: ``(name) -> bool``: True drops the local copy of a dataset the
            server deleted; anything else keeps it and recreates the dataset. None: follow
            the deletion unless this device holds unsynced changes.
        on_datasets_merged: ``(name, merged_names) -> bool``: False stops the sync before
            anything is applied; None or any other answer continues.
        run_blocking: ``async (fn, *args)`` running a blocking store call on the store's
            writer thread; None calls the store directly (in-memory stores, tests).
        new_request_id: makes client request ids; None uses random UUIDs.
        observe: called (or awaited) with each command and its result once it succeeded
            (status, change events, progress).
        on_applied: called on the store's thread right after each `ApplySync`, in the same
            call (no other store call comes between): what a watcher of the device file
            learns of the sync's writes there needs no reading back. It must not raise.

    Returns:
        The flow's `SyncResult`. Raises what the flow raises: `OfflineError` (the server is
        unreachable; local data intact), `ConflictError`, store or callback errors.
    """
    blocking = run_blocking or _call_directly
    make_id = new_request_id or (lambda: str(uuid.uuid4()))

    async def execute(command: commands.Command[Any]) -> Any:
        match command:
            case commands.ReadLocal(dataset=name, only=only, for_push=True):
                return await blocking(_read_for_push, store, owner, name, only)
            case commands.ReadLocal(dataset=name, only=only):
                return await blocking(_read, store, owner, name, only)
            case commands.ApplySync():
                return await blocking(_apply, store, owner, command, on_applied)
            case commands.DropDataset(dataset=name):
                return await blocking(store.drop_dataset, owner, name)
            case commands.NewRequestId():
                return make_id()
            case commands.ResolveConflicts(dataset=name, conflicts=conflicts):
                return await maybe_await(on_conflict(name, list(conflicts)))
            case commands.DatasetDeleted(dataset=name, unsynced_changes=unsynced):
                if on_dataset_deleted is None:
                    return not unsynced
                return bool(await maybe_await(on_dataset_deleted(name)))
            case commands.DatasetsMerged(dataset=name, merged_names=names):
                if on_datasets_merged is None:
                    return True
                return await maybe_await(on_datasets_merged(name, list(names))) is not False
        try:
            return await _remote(command)
        except (OSError, TimeoutError) as exc:
            raise OfflineError(
                f"the server is unreachable ({exc}); local data is intact, sync again later"
            ) from exc

    async def _remote(command: commands.Command[Any]) -> Any:
        match command:
            case commands.ListRecords(dataset=name, since=since, next_token=token):
                return await backend.list_records(name, since, token)
            case commands.PushRecords():
                return await backend.push_records(
                    command.dataset,
                    command.patches,
                    client_request_id=command.client_request_id,
                    device_id=command.device_id,
                )
            case commands.DeleteRemote(dataset=name, client_request_id=request_id):
                return await backend.delete_dataset(name, client_request_id=request_id)
        raise UsageError(f"the sync driver cannot execute {command!r}")

    try:
        command = next(flow)
        while True:
            log.debug("sync command %r", command)
            try:
                result = await execute(command)
            except Exception as exc:  # handed to the flow, which re-raises what it can't handle
                command = flow.throw(exc)
            else:
                if observe is not None:
                    await maybe_await(observe(command, result))
                command = flow.send(result)
    except StopIteration as stop:
        outcome: SyncResult = stop.value
        return outcome
    finally:
        flow.close()
