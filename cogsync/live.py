"""The live side of a client: status tracking, change events and the device-file watcher.

`LiveState` is told about every local write and every sync, keeps the `StatusBoard`
current, emits `ChangeEvent`s, and (for stores that expose SQLite's ``data_version``)
polls the device file about twice a second to notice writes by other processes, reporting
them as ``"process"`` changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol, TypeVar, runtime_checkable

from cogsync.dataset import LocalView
from cogsync.engine import commands
from cogsync.events import ChangeEvent, Listeners, Origin
from cogsync.exceptions import (
    CogsyncError,
    ConflictError,
    LimitExceededError,
    NotAuthorizedError,
    OfflineError,
    ServerError,
)
from cogsync.models import SyncWrites, record_rows
from cogsync.status import ClientStatus, DatasetStatus, StatusBoard

__all__ = ["LiveState", "OnApplied", "SyncObserver"]

log = logging.getLogger(__name__)
T = TypeVar("T")
State = int
"""What the watcher compares of a record: the hash of (value, sync count, dirty 0 or 1).
A number, not the tuple: the picture of 20 datasets of 1 MB keeps no value alive."""
Fingerprint = dict[str, dict[str, State]]
SyncObserver = Callable[[commands.Command[Any], Any], Any]
OnApplied = Callable[[Any, str, commands.ApplySync, list[str]], None]
"""`cogsync.driver.OnApplied`: (store, owner, command, skipped keys)."""


@runtime_checkable
class _Versioned(Protocol):
    """A store whose file other processes may write (`SQLiteStore`)."""

    def data_version(self) -> int: ...

    def record_states(
        self, owner: str, name: str, keys: Collection[str] | None = None
    ) -> dict[str, tuple[str | None, int, int]]: ...


def _states(
    store: _Versioned, owner: str, name: str, keys: Collection[str] | None = None
) -> dict[str, State]:
    """The `State` of every record of a dataset (or those among ``keys``)."""
    return {key: hash(state) for key, state in store.record_states(owner, name, keys).items()}


def _server_answered(error: CogsyncError) -> bool | None:
    """Whether ``error`` shows the server reachable (None: it says nothing about that)."""
    if isinstance(error, OfflineError):
        return False
    if isinstance(error, NotAuthorizedError | ServerError | ConflictError | LimitExceededError):
        return True
    return None


class _PulledKeys:
    """Collects the keys a sync pulled that another device wrote, and whether it touched
    the whole dataset: a driver observer."""

    def __init__(self, device_id: str | None) -> None:
        self.keys: set[str] = set()
        self.whole = False
        self._device_id = device_id

    def __call__(self, command: commands.Command[Any], result: Any) -> None:
        if isinstance(command, commands.ListRecords):
            device = self._device_id
            self.keys.update([row[0] for row in record_rows(result.records) if row[4] != device])
        elif isinstance(command, commands.DropDataset) or (
            isinstance(command, commands.ApplySync) and command.reset_sync_counts
        ):
            self.whole = True


class LiveState:
    """Status and change events of one client.

    Args:
        local: the client's view of its store (owner resolution, store thread).
        device_id: this device's id (records it pushed itself are no remote change).
        poll_interval: seconds between two ``data_version`` checks.
    """

    def __init__(
        self, local: LocalView, *, device_id: str | None = None, poll_interval: float = 0.5
    ) -> None:
        self._device_id = device_id
        self.board = StatusBoard()
        self.changes: Listeners[ChangeEvent] = Listeners()
        self._local = local
        self._poll_interval = poll_interval
        self._versioned = isinstance(local.store, _Versioned)
        self._version: int | None = None
        self._seen: Fingerprint = {}
        self._watcher: asyncio.Task[None] | None = None

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start watching the device file for other processes' writes (if it can be)."""
        if self._versioned and self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch(), name="cogsync-file-watch"
            )

    async def aclose(self) -> None:
        """Stop watching and deliver the events already emitted."""
        task, self._watcher = self._watcher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.changes.aclose()
        await self.board.listeners.aclose()

    # ---- what happened ------------------------------------------------------------------
    async def local_write(self, name: str, keys: tuple[str, ...]) -> None:
        """This client wrote ``keys`` of dataset ``name``."""
        self._emit(name, keys, "local")
        await self._refresh(name, keys or None)

    async def track(self, name: str, sync: Callable[[SyncObserver, OnApplied], Awaitable[T]]) -> T:
        """Run ``sync(observer, on_applied)`` for dataset ``name`` (the driver's ``observe``
        and ``on_applied``), keeping status and events current."""
        pulled = _PulledKeys(self._device_id)
        self.board.sync_started(name)
        try:
            result = await sync(pulled, self._applied_blocking)
        except CogsyncError as exc:
            self.board.sync_failed(name, exc, online=_server_answered(exc))
            raise
        except BaseException:
            self.board.sync_failed(name, None, online=None)
            raise
        finally:
            with contextlib.suppress(CogsyncError):
                await self._refresh(name, None if pulled.whole else ())
            if pulled.keys:
                self._emit(name, tuple(sorted(pulled.keys)), "remote")
        self.board.sync_succeeded(name)
        return result

    def set_online(self, online: bool) -> None:
        """Record whether the server is reachable."""
        self.board.set_online(online)

    # ---- reading ------------------------------------------------------------------------
    async def status(self) -> ClientStatus:
        """The client's status, with counts read from the store now."""
        counts = await self._local.read(self._counts_blocking)
        return self.board.snapshot(counts)

    async def dataset_status(self, name: str) -> DatasetStatus:
        """One dataset's status, with counts read from the store now."""
        pending, sync_count = await self._local.read(self._count_blocking, name)
        self.board.set_counts(name, pending, sync_count)
        return self.board.dataset(name)

    def _counts_blocking(self, owner: str) -> dict[str, tuple[int, int]]:
        store = self._local.store
        return {
            s.name: (len(store.dirty_records(owner, s.name)), s.last_sync_count)
            for s in store.list_datasets(owner)
        }

    def _count_blocking(self, owner: str, name: str) -> tuple[int, int]:
        store = self._local.store
        state = store.get_dataset(owner, name)
        sync_count = 0 if state is None else state.last_sync_count
        return len(store.dirty_records(owner, name)), sync_count

    # ---- internals ----------------------------------------------------------------------
    def _emit(self, name: str, keys: tuple[str, ...], origin: Origin) -> None:
        if self.changes:
            self.changes.emit(ChangeEvent(name, keys, origin))

    async def _refresh(self, name: str, keys: tuple[str, ...] | None = None) -> None:
        """Re-read the counts of ``name``; keep the watcher's picture of it current (only
        ``keys`` of it, unless None)."""
        pending, sync_count = await self._local.read(self._refresh_blocking, name, keys)
        self.board.set_counts(name, pending, sync_count)

    def _refresh_blocking(
        self, owner: str, name: str, keys: tuple[str, ...] | None
    ) -> tuple[int, int]:
        store = self._local.store
        if self._watching(store):
            assert isinstance(store, _Versioned)
            if keys is None:  # nobody else wrote: keep the picture current
                self._seen[name] = _states(store, owner, name)
            elif keys:
                self._read_back(store, owner, name, keys)
        return self._count_blocking(owner, name)

    def _read_back(self, store: _Versioned, owner: str, name: str, keys: Collection[str]) -> None:
        """Take ``keys`` of dataset ``name`` into the picture as the file holds them now."""
        seen = self._seen.setdefault(name, {})
        for key in keys:
            seen.pop(key, None)
        seen.update(_states(store, owner, name, keys))

    def _applied_blocking(
        self, store: object, owner: str, command: commands.ApplySync, skipped: list[str]
    ) -> None:
        """The driver's ``on_applied``: in the very call that applied a sync's writes (so no
        write came after them), a key written with a known revision holds what was written;
        only the others are read back."""
        try:
            self._note_applied(store, owner, command, skipped)
        except CogsyncError as exc:  # the sync's writes stand; only the picture is behind
            log.warning("cannot note what a sync of %r wrote: %s", command.dataset, exc)
            self._seen.pop(command.dataset, None)
            self._version = None  # the next poll takes a new picture, reporting nothing

    def _note_applied(
        self, store: object, owner: str, command: commands.ApplySync, skipped: list[str]
    ) -> None:
        if not self._watching(store):
            return
        assert isinstance(store, _Versioned)
        name = command.dataset
        if command.reset_sync_counts:
            self._seen[name] = _states(store, owner, name)
            return
        seen, unsure, missed = self._seen.setdefault(name, {}), [], frozenset(skipped)
        ours, pulled = SyncWrites.parts(command.writes)
        known = []
        for write in ours:  # (acknowledgements make each write as they are read: once)
            record = write.record
            if write.expected_revision is None:
                unsure.append(record.key)
            else:
                known.append((record.key, record.value, record.sync_count, int(record.dirty)))
        clean = ((row[0], row[1], row[2], 0) for row in record_rows(pulled))
        for key, value, count, dirty in itertools.chain(known, clean):
            if key in missed:
                unsure.append(key)
            else:
                seen[key] = hash((value, count, dirty))
        if unsure:
            self._read_back(store, owner, name, unsure)

    def _watching(self, store: object) -> bool:
        """Whether the picture of the file is kept (and no other process wrote since)."""
        return self._versioned and self._version is not None and self._unchanged(store)

    def _unchanged(self, store: object) -> bool:
        assert isinstance(store, _Versioned)
        return store.data_version() == self._version

    async def _watch(self) -> None:
        while True:
            try:
                changed = await self._local.read(self._poll_blocking)
            except CogsyncError as exc:
                log.warning("cannot check the device file for other writers: %s", exc)
                changed = {}
            for name, keys in changed.items():
                self._emit(name, keys, "process")
                with contextlib.suppress(CogsyncError):
                    await self._refresh(name)
            await asyncio.sleep(self._poll_interval)

    def _poll_blocking(self, owner: str) -> dict[str, tuple[str, ...]]:
        store = self._local.store
        assert isinstance(store, _Versioned)
        version = store.data_version()
        if version == self._version:
            return {}
        first = self._version is None
        self._version = version
        now: Fingerprint = {
            s.name: _states(store, owner, s.name) for s in store.list_datasets(owner)
        }
        before, self._seen = self._seen, now
        if first:
            return {}
        changed: dict[str, tuple[str, ...]] = {}
        for name in sorted(before.keys() | now.keys()):
            old, new = before.get(name, {}), now.get(name, {})
            keys = tuple(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))
            if keys or (name in before) != (name in now):
                changed[name] = keys
        return changed
