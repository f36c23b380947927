"""A Hypothesis state machine that checks convergence of devices syncing one backend.

`SyncMachine` runs three devices of one identity and one device of a second identity
against a server, with random puts, removes, dataset deletions, offline periods, dropped
push answers and syncs. Whenever it settles (all devices online, syncing until nobody
pushes) it checks:

* the devices of an identity hold identical data, equal to the server's, nothing dirty;
* every write a device made was, after its next successful sync of that dataset, on the
  server, unless the sync reported it as a conflict or the dataset was deleted;
* the second identity never sees the first identity's data, and vice versa.

Subclass it and override `make_backend`, `make_store` (and `make_server`) to run the same
machine against another backend or store; run it with ``SyncMachine.TestCase``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from cogsync.driver import run_sync
from cogsync.engine.flow import sync_dataset
from cogsync.exceptions import OfflineError
from cogsync.models import (
    PushResult,
    RecordPage,
    RecordPatch,
    RemoteDataset,
    ServerInfo,
    SyncResult,
)
from cogsync.remote.base import RemoteBackend
from cogsync.store.base import LocalStore
from cogsync.store.memory import MemoryStore
from cogsync.testing.fakes import MemoryBackend, MemoryServer

__all__ = ["Device", "FlakyBackend", "SyncMachine", "remote_values"]

DATASETS = ("d1", "d2")
KEYS = ("k1", "k2", "k3")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class FlakyBackend:
    """Wraps any `RemoteBackend`: offline switch, lost push answers, actions before calls.

    Attributes:
        offline: while True every call raises `OfflineError`.
        drop_next_push_answer: the next push is applied, then `OfflineError` is raised.
        before: method name -> coroutine function run once before that method's next
            call (e.g. another device syncing, or the app writing, in the middle of a sync).
    """

    def __init__(self, inner: RemoteBackend) -> None:
        self.inner = inner
        self.offline = False
        self.drop_next_push_answer = False
        self.before: dict[str, Callable[[], Awaitable[object]]] = {}

    async def _enter(self, method: str) -> None:
        if self.offline:
            raise OfflineError("backend switched offline by the test")
        action = self.before.pop(method, None)
        if action is not None:
            await action()

    async def server_info(self) -> ServerInfo:
        """See `RemoteBackend`."""
        await self._enter("server_info")
        return await self.inner.server_info()

    async def list_datasets(self) -> list[RemoteDataset]:
        """See `RemoteBackend`."""
        await self._enter("list_datasets")
        return await self.inner.list_datasets()

    async def list_records(
        self, dataset_name: str, last_sync_count: int, next_token: str | None = None
    ) -> RecordPage:
        """See `RemoteBackend`."""
        await self._enter("list_records")
        return await self.inner.list_records(dataset_name, last_sync_count, next_token)

    async def push_records(
        self,
        dataset_name: str,
        patches: Sequence[RecordPatch],
        *,
        client_request_id: str,
        device_id: str,
    ) -> PushResult:
        """See `RemoteBackend`; a dropped answer raises `OfflineError` after applying."""
        await self._enter("push_records")
        result = await self.inner.push_records(
            dataset_name, patches, client_request_id=client_request_id, device_id=device_id
        )
        if self.drop_next_push_answer:
            self.drop_next_push_answer = False
            raise OfflineError("push answer lost after the server applied it")
        return result

    async def delete_dataset(self, dataset_name: str, *, client_request_id: str) -> int:
        """See `RemoteBackend`."""
        await self._enter("delete_dataset")
        return await self.inner.delete_dataset(dataset_name, client_request_id=client_request_id)

    async def close(self) -> None:
        """See `RemoteBackend`."""
        await self.inner.close()


async def remote_values(backend: RemoteBackend, name: str) -> dict[str, str]:
    """The live key/values the server holds for dataset ``name`` (a full pull)."""
    values: dict[str, str] = {}
    token: str | None = None
    while True:
        page = await backend.list_records(name, 0, token)
        for record in page.records:
            if record.value is None:
                values.pop(record.key, None)
            else:
                values[record.key] = record.value
        token = page.next_token
        if token is None:
            return {} if page.deleted else values


@dataclass
class Device:
    """One device: a local store, its backend and the owner it syncs."""

    store: LocalStore
    backend: RemoteBackend
    owner: str
    callbacks: dict[str, Any] = field(default_factory=dict)

    async def sync(self, name: str, **callbacks: Any) -> SyncResult:
        """Synchronize ``name`` with the engine's flow and driver."""
        flow = sync_dataset(name, device_id=self.store.device_id())
        merged = self.callbacks | callbacks
        return await run_sync(
            flow, store=self.store, owner=self.owner, backend=self.backend, **merged
        )

    def write(self, name: str, changes: dict[str, str | None], now: datetime) -> None:
        """Write locally as the app would."""
        self.store.write_local(self.owner, name, changes, now)

    def values(self, name: str) -> dict[str, str]:
        """The live key/values stored locally."""
        records = self.store.get_records(self.owner, name)
        return {k: r.value for k, r in records.items() if r.value is not None}


class SyncMachine(RuleBasedStateMachine):
    """Devices of two identities syncing through one server; see the module docstring."""

    identities = ("id-a", "id-a", "id-a", "id-b")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.server = self.make_server()
        self.flaky: list[FlakyBackend] = []
        self.devices: list[Device] = []
        for index, identity in enumerate(self.identities):
            backend = FlakyBackend(self.make_backend(self.server, identity))
            self.flaky.append(backend)
            self.devices.append(Device(self.make_store(index), backend, identity))
        # (device, dataset) -> key -> value written since that device's last good sync
        self.pending: dict[tuple[int, str], dict[str, str | None]] = {}
        # device -> (dataset, key, value) the app wrote while a sync was running, in order
        self.in_flight: dict[int, list[tuple[str, str, str]]] = {}
        self.ticks = 0
        self.activity = 0  # syncs that changed something, nested ones included
        # device -> (dataset, key) other devices pushed while that device's sync ran
        self.overwritten: dict[int, set[tuple[str, str]]] = {}

    # ---- what a subclass may replace ---------------------------------------------------
    def make_server(self) -> Any:
        """The shared server (any object `make_backend` understands)."""
        return MemoryServer()

    def make_backend(self, server: Any, identity_id: str) -> RemoteBackend:
        """One identity's backend on ``server``."""
        assert isinstance(server, MemoryServer)
        return MemoryBackend(server, identity_id)

    def make_store(self, index: int) -> LocalStore:
        """A fresh local store for device number ``index``."""
        return MemoryStore(device_id=f"device-{index}")

    # ---- rules -----------------------------------------------------------------------------
    def _now(self) -> datetime:
        self.ticks += 1
        return EPOCH + timedelta(seconds=self.ticks)

    def _write(self, device: int, name: str, key: str, value: str | None) -> None:
        dev = self.devices[device]
        old = dev.store.get_record(dev.owner, name, key)
        dev.write(name, {key: value}, self._now())
        pending = self.pending.setdefault((device, name), {})
        if value is None and (old is None or old.sync_count == 0):
            pending.pop(key, None)  # removing a record the server never had: nothing to send
        else:
            pending[key] = value

    @rule(
        device=st.integers(0, 3),
        name=st.sampled_from(DATASETS),
        key=st.sampled_from(KEYS),
        value=st.text("xyz", max_size=3),
    )
    def put(self, device: int, name: str, key: str, value: str) -> None:
        """The app sets a record (values name their identity, to check isolation)."""
        self._write(device, name, key, f"{self.identities[device]}:{value}")

    @rule(device=st.integers(0, 3), name=st.sampled_from(DATASETS), key=st.sampled_from(KEYS))
    def remove(self, device: int, name: str, key: str) -> None:
        """The app removes a record."""
        if key in self.devices[device].values(name):
            self._write(device, name, key, None)

    @rule(device=st.integers(0, 3), name=st.sampled_from(DATASETS))
    def delete_dataset(self, device: int, name: str) -> None:
        """The app deletes a whole dataset."""
        dev = self.devices[device]
        if dev.store.get_dataset(dev.owner, name) is not None:
            dev.store.mark_dataset_deleted(dev.owner, name)
            self.pending.pop((device, name), None)

    @rule(device=st.integers(0, 3))
    def toggle_offline(self, device: int) -> None:
        """A device loses or regains the network."""
        self.flaky[device].offline = not self.flaky[device].offline

    @rule(device=st.integers(0, 3))
    def lose_next_push_answer(self, device: int) -> None:
        """The connection will drop right after the server applies the device's next push."""
        self.flaky[device].drop_next_push_answer = True

    @rule(
        device=st.integers(0, 3),
        other=st.integers(0, 3),
        name=st.sampled_from(DATASETS),
        key=st.sampled_from(KEYS),
        call=st.sampled_from(["list_records", "push_records"]),
    )
    def interleave_sync(self, device: int, other: int, name: str, key: str, call: str) -> None:
        """Another device will write ``key`` and sync ``name`` just before this device's next
        ``call`` (a concurrent writer between this device's pull and push)."""
        if other == device:
            return

        async def write_and_sync() -> None:
            if other in self.overwritten:
                return  # already syncing further up: a client never nests its own syncs
            self._write(other, name, key, f"{self.identities[other]}:{self.ticks}")
            await self._sync(other, name)

        self.flaky[device].before[call] = write_and_sync

    @rule(
        device=st.integers(0, 3),
        name=st.sampled_from(DATASETS),
        key=st.sampled_from(KEYS),
        value=st.text("xyz", max_size=3),
        call=st.sampled_from(["list_records", "push_records"]),
    )
    def edit_during_sync(self, device: int, name: str, key: str, value: str, call: str) -> None:
        """The app will write a record just before this device's next ``call``."""
        tagged = f"{self.identities[device]}:{value}"

        async def edit() -> None:
            self.devices[device].write(name, {key: tagged}, self._now())
            self.in_flight.setdefault(device, []).append((name, key, tagged))

        self.flaky[device].before[call] = edit

    @rule(device=st.integers(0, 3), name=st.sampled_from(DATASETS))
    def sync(self, device: int, name: str) -> None:
        """A device syncs a dataset (fails cleanly while offline)."""
        dev = self.devices[device]
        before = dev.values(name)
        self.loop.run_until_complete(self._sync(device, name))
        if self.flaky[device].offline:
            assert dev.values(name) == before, "a failed sync changed local data"

    async def _sync(self, device: int, name: str) -> SyncResult | None:
        dev = self.devices[device]
        existed = dev.store.get_dataset(dev.owner, name) is not None
        self.overwritten[device] = set()
        try:
            result = await dev.sync(name)
        except OfflineError:
            assert self.flaky[device].offline, "OfflineError while online"
            self._land_in_flight(device)
            return None
        finally:
            overwritten = self.overwritten.pop(device)
        if result.pushed or result.pulled or (result.deleted and existed):
            self.activity += 1
        await self._check_acknowledged(device, name, result, overwritten)
        return result

    @precondition(lambda self: self.ticks > 0)
    @rule()
    def settle(self) -> None:
        """Everybody online, sync until quiet, then check the invariants."""
        for backend in self.flaky:
            backend.offline = False
        for _ in range(8):
            activity = self.activity
            for device in range(len(self.devices)):
                for name in DATASETS:
                    result = self.loop.run_until_complete(self._sync(device, name))
                    assert result is not None
            quiet = self.activity == activity
            if quiet and not any(d.store.has_unsynced_changes() for d in self.devices):
                break
        else:
            raise AssertionError("devices kept changing data: no quiescence after 8 rounds")
        self._check_converged()

    def teardown(self) -> None:
        """Settle one last time, then release the event loop."""
        try:
            if self.ticks:
                self.settle()
        finally:
            self.loop.close()

    # ---- invariants ------------------------------------------------------------------------
    def _remote(self, device: int, name: str) -> dict[str, str]:
        return self.loop.run_until_complete(self._remote_async(device, name))

    async def _remote_async(self, device: int, name: str) -> dict[str, str]:
        return await remote_values(self.flaky[device].inner, name)

    def _land_in_flight(self, device: int) -> None:
        """After a failed sync, writes made during it are pending like any other."""
        for dataset, key, value in self.in_flight.pop(device, []):
            self.pending.setdefault((device, dataset), {})[key] = value

    async def _check_acknowledged(
        self,
        device: int,
        name: str,
        result: SyncResult,
        overwritten: set[tuple[str, str]],
    ) -> None:
        """Check the device's writes reached the server, unless reported as conflicts or
        overwritten by another device's sync nested inside this one."""
        written = self.pending.pop((device, name), {})
        during: dict[str, set[str]] = {}
        for dataset, key, value in self.in_flight.pop(device, []):
            if dataset == name:
                during.setdefault(key, set()).add(value)
            if dataset == name and not self._dirty(device, name, key):
                written[key] = value  # this sync pushed the app's last write
            else:
                self.pending.setdefault((device, dataset), {})[key] = value  # the next one will
        for running in self.overwritten.values():
            running.update((name, key) for key in written)
        written = {k: v for k, v in written.items() if (name, k) not in overwritten}
        if result.deleted or not written:
            return
        remote = await self._remote_async(device, name)
        in_conflict = {c.key for c in result.conflicts}
        for key, wrote in written.items():
            # a write the app made during the sync may have replaced this one
            accepted = {wrote, *during.get(key, ())}
            assert remote.get(key) in accepted or key in in_conflict, (
                f"device {device} wrote {key}={wrote!r} to {name}; after its sync the server "
                f"holds {remote.get(key)!r} and no conflict was reported"
            )

    def _dirty(self, device: int, name: str, key: str) -> bool:
        dev = self.devices[device]
        record = dev.store.get_record(dev.owner, name, key)
        return record is not None and record.dirty

    def _check_converged(self) -> None:
        for name in DATASETS:
            by_identity: dict[str, list[int]] = {}
            for device, identity in enumerate(self.identities):
                by_identity.setdefault(identity, []).append(device)
            for identity, devices in by_identity.items():
                remote = self._remote(devices[0], name)
                assert all(v.startswith(f"{identity}:") for v in remote.values()), remote
                for device in devices:
                    dev = self.devices[device]
                    assert dev.values(name) == remote, (device, name)
                    assert not dev.store.dirty_records(dev.owner, name)
                    state = dev.store.get_dataset(dev.owner, name)
                    if state is not None and remote:
                        synced = self.server_sync_count(identity, name)
                        assert synced is None or state.last_sync_count == synced

    def server_sync_count(self, identity_id: str, name: str) -> int | None:
        """The server's sync count of a dataset, if this server can tell (else None)."""
        if isinstance(self.server, MemoryServer):
            return self.server.sync_count(identity_id, name)
        return None
