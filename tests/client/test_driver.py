"""`run_sync` executing the flow against real stores and the in-memory server."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cogsync.engine.conflicts import local_wins, remote_wins
from cogsync.exceptions import ConflictError, OfflineError
from cogsync.models import Conflict, PatchOp, RecordPatch, Resolution
from cogsync.store.memory import MemoryStore
from cogsync.store.sqlite import SQLiteStore
from cogsync.testing.fakes import MemoryBackend, MemoryServer
from cogsync.testing.stateful import Device

T = TypeVar("T")
T1 = datetime(2026, 5, 1, 12, tzinfo=UTC)
T2 = datetime(2026, 5, 1, 13, tzinfo=UTC)
ID = "eu-west-1:identity-1"


@pytest.fixture
def server() -> MemoryServer:
    return MemoryServer()


def device(server: MemoryServer, name: str, identity: str = ID) -> Device:
    return Device(MemoryStore(device_id=name), MemoryBackend(server, identity), identity)


def backend_of(dev: Device) -> MemoryBackend:
    assert isinstance(dev.backend, MemoryBackend)
    return dev.backend


def other_device_writes(server: MemoryServer, key: str, value: str, request_id: str) -> None:
    count = next((r.sync_count for r in _server_records(server) if r.key == key), 0)
    server.push_records(
        ID,
        "ds",
        [RecordPatch(PatchOp.REPLACE, key, value, count, T2)],
        client_request_id=request_id,
        device_id="device-x",
    )


def _server_records(server: MemoryServer) -> tuple[Any, ...]:
    return server.list_records(ID, "ds", 0, None).records


async def test_two_devices_converge(server: MemoryServer) -> None:
    a, b = device(server, "dev-a"), device(server, "dev-b")
    a.write("ds", {"name": "Ada", "lang": "en"}, T1)
    first = await a.sync("ds")
    assert (first.pushed, first.sync_count) == (2, 1)
    pulled = await b.sync("ds")
    assert (pulled.pulled, pulled.pushed) == (2, 0)
    b.write("ds", {"lang": None, "city": "Rome"}, T2)
    await b.sync("ds")
    await a.sync("ds")
    assert (
        a.values("ds")
        == b.values("ds")
        == server.values(ID, "ds")
        == {
            "name": "Ada",
            "city": "Rome",
        }
    )
    for dev in (a, b):
        state = dev.store.get_dataset(ID, "ds")
        assert state is not None and state.last_sync_count == server.sync_count(ID, "ds") == 2
        assert dev.store.dirty_records(ID, "ds") == []


async def test_offline_edits_on_both_devices_are_settled_by_the_last_writer(
    server: MemoryServer,
) -> None:
    a, b = device(server, "dev-a"), device(server, "dev-b")
    a.write("ds", {"k": "base"}, T1)
    await a.sync("ds")
    await b.sync("ds")
    a.write("ds", {"k": "from a", "only-a": "1"}, T1)
    b.write("ds", {"k": "from b"}, T2)  # later edit
    await a.sync("ds")
    result = await b.sync("ds")
    assert [c.key for c in result.conflicts] == ["k"]
    assert (result.conflicts[0].local.value, result.conflicts[0].remote.value) == (
        "from b",
        "from a",
    )
    await a.sync("ds")
    assert a.values("ds") == b.values("ds") == {"k": "from b", "only-a": "1"}


async def test_async_resolver_is_awaited_and_its_choice_applied(server: MemoryServer) -> None:
    a, b = device(server, "dev-a"), device(server, "dev-b")
    a.write("ds", {"k": "a"}, T1)
    b.write("ds", {"k": "b"}, T2)
    await a.sync("ds")
    seen: list[list[Conflict]] = []

    async def merge(name: str, conflicts: list[Conflict]) -> list[Resolution]:
        seen.append(conflicts)
        await asyncio.sleep(0)
        return [c.resolve_with_value(f"{c.remote.value}+{c.local.value}") for c in conflicts]

    await b.sync("ds", on_conflict=merge)
    await a.sync("ds")
    assert len(seen) == 1
    assert a.values("ds") == b.values("ds") == server.values(ID, "ds") == {"k": "a+b"}


async def test_remote_wins_discards_the_local_edit(server: MemoryServer) -> None:
    a, b = device(server, "dev-a"), device(server, "dev-b")
    a.write("ds", {"k": "a"}, T1)
    b.write("ds", {"k": "b"}, T2)
    await a.sync("ds")
    result = await b.sync("ds", on_conflict=remote_wins)
    assert result.pushed == 0 and len(result.conflicts) == 1
    assert b.values("ds") == {"k": "a"} and server.sync_count(ID, "ds") == 1


async def test_connection_dropped_after_the_server_applied_a_push_applies_it_once(
    server: MemoryServer,
) -> None:
    a = device(server, "dev-a")
    a.write("ds", {"k": "v"}, T1)
    backend_of(a).fail_next("push_records", after_apply=True)
    result = await a.sync("ds")
    pushes = [c for c in backend_of(a).calls if c.method == "push_records"]
    assert len(pushes) == 2
    assert pushes[0].client_request_id == pushes[1].client_request_id
    assert len(server.changes) == 1 and server.sync_count(ID, "ds") == 1
    assert result.sync_count == 1
    assert a.store.dirty_records(ID, "ds") == []


async def test_a_push_whose_answers_were_all_lost_is_adopted_by_the_next_sync(
    server: MemoryServer,
) -> None:
    a = device(server, "dev-a")
    a.write("ds", {"k": "v"}, T1)
    backend_of(a).fail_next("push_records", after_apply=True, times=3)  # 1 try + 2 re-sends
    with pytest.raises(OfflineError):
        await a.sync("ds")
    assert server.values(ID, "ds") == {"k": "v"} and len(server.changes) == 1
    result = await a.sync("ds")
    assert (result.pulled, result.pushed, result.conflicts) == (1, 0, ())
    assert a.store.dirty_records(ID, "ds") == [] and len(server.changes) == 1


async def test_offline_sync_raises_offline_error_and_keeps_local_data(
    server: MemoryServer,
) -> None:
    a = device(server, "dev-a")
    a.write("ds", {"k": "v"}, T1)
    backend_of(a).offline = True
    with pytest.raises(OfflineError):
        await a.sync("ds")
    assert [r.key for r in a.store.dirty_records(ID, "ds")] == ["k"]
    backend_of(a).offline = False
    assert (await a.sync("ds")).pushed == 1


async def test_socket_errors_reach_the_caller_as_offline_error(server: MemoryServer) -> None:
    a = device(server, "dev-a")

    def reset() -> None:
        raise ConnectionResetError("peer reset")

    backend_of(a).before_next("list_records", reset)
    with pytest.raises(OfflineError, match="unreachable") as caught:
        await a.sync("ds")
    assert isinstance(caught.value.__cause__, ConnectionResetError)


async def test_an_edit_made_during_the_push_survives_and_goes_out_next_time(
    server: MemoryServer,
) -> None:
    a = device(server, "dev-a")
    a.write("ds", {"k": "v1"}, T1)
    backend_of(a).before_next("push_records", lambda: a.write("ds", {"k": "v2"}, T2))
    await a.sync("ds")
    assert server.values(ID, "ds") == {"k": "v1"}
    mine = a.store.get_record(ID, "ds", "k")
    assert mine is not None and (mine.value, mine.dirty, mine.sync_count) == ("v2", True, 1)
    second = await a.sync("ds")
    assert (second.pushed, second.conflicts) == (1, ())
    assert server.values(ID, "ds") == {"k": "v2"}


async def test_an_edit_made_before_the_pull_is_applied_is_not_overwritten(
    server: MemoryServer,
) -> None:
    a = device(server, "dev-a")
    other_device_writes(server, "k", "remote", "x-1")
    # The app writes after the flow read the store, before the pulled record is applied.
    later = datetime(2027, 1, 1, tzinfo=UTC)
    backend_of(a).before_next("list_records", lambda: a.write("ds", {"k": "mine"}, later))
    result = await a.sync("ds")
    assert [c.key for c in result.conflicts] == ["k"]  # met on the retry, newer edit wins
    assert a.values("ds") == server.values(ID, "ds") == {"k": "mine"}


async def test_last_sync_count_waits_when_another_device_wrote_between_pull_and_push(
    server: MemoryServer,
) -> None:
    a = device(server, "dev-a")
    a.write("ds", {"mine": "1"}, T1)
    backend_of(a).before_next("push_records", lambda: other_device_writes(server, "o", "2", "x"))
    result = await a.sync("ds")
    assert result.sync_count == 2
    state = a.store.get_dataset(ID, "ds")
    assert state is not None and state.last_sync_count == 0
    assert a.values("ds") == {"mine": "1"}
    caught_up = await a.sync("ds")
    assert caught_up.pulled == 2  # "o", and "mine" adopted again at no cost
    assert a.values("ds") == {"mine": "1", "o": "2"}
    state = a.store.get_dataset(ID, "ds")
    assert state is not None and state.last_sync_count == 2


async def test_retries_exhausted_when_another_device_keeps_writing(server: MemoryServer) -> None:
    a = device(server, "dev-a")
    a.write("ds", {"k": "mine"}, T1)
    for n in range(7):
        backend_of(a).before_next(
            "push_records", functools.partial(other_device_writes, server, "k", f"x{n}", f"x{n}")
        )
        backend_of(a).before_next(
            "list_records", functools.partial(other_device_writes, server, "k", f"y{n}", f"y{n}")
        )
    with pytest.raises(ConflictError, match="retries exhausted"):
        await a.sync("ds", on_conflict=local_wins)
    assert [c.method for c in backend_of(a).calls].count("push_records") == 6  # 1 + 5 retries
    mine = a.store.get_record(ID, "ds", "k")
    assert mine is not None and mine.dirty


async def test_deletion_reaches_other_devices_and_unsynced_edits_recreate_it(
    server: MemoryServer,
) -> None:
    a, b, c = device(server, "dev-a"), device(server, "dev-b"), device(server, "dev-c")
    a.write("ds", {"k": "v", "j": "w"}, T1)
    await a.sync("ds")
    await b.sync("ds")
    await c.sync("ds")
    a.store.mark_dataset_deleted(ID, "ds")
    deleted = await a.sync("ds")
    assert deleted.deleted and a.store.get_dataset(ID, "ds") is None
    assert server.list_datasets(ID)[0].deleted
    assert (await b.sync("ds")).deleted  # clean copy: follows the deletion by default
    assert b.store.get_dataset(ID, "ds") is None
    c.write("ds", {"k": "kept"}, T2)  # unsynced edit: kept, the dataset is recreated
    recreated = await c.sync("ds")
    assert not recreated.deleted
    assert server.values(ID, "ds") == c.values("ds") == {"k": "kept", "j": "w"}
    await a.sync("ds")
    assert a.values("ds") == {"k": "kept", "j": "w"}


async def test_on_dataset_deleted_answers_are_obeyed(server: MemoryServer) -> None:
    a, b = device(server, "dev-a"), device(server, "dev-b")
    a.write("ds", {"k": "v"}, T1)
    await a.sync("ds")
    await b.sync("ds")
    a.store.mark_dataset_deleted(ID, "ds")
    await a.sync("ds")
    asked: list[str] = []

    async def keep(name: str) -> bool:
        asked.append(name)
        return False

    await b.sync("ds", on_dataset_deleted=keep)
    assert asked == ["ds"] and server.values(ID, "ds") == {"k": "v"}
    a.store.mark_dataset_deleted(ID, "ds")  # a recreated nothing locally; delete again
    await a.sync("ds")
    result = await b.sync("ds", on_dataset_deleted=lambda name: True)
    assert result.deleted and b.store.get_dataset(ID, "ds") is None


async def test_records_written_after_a_local_delete_replace_the_remote_dataset(
    server: MemoryServer,
) -> None:
    a = device(server, "dev-a")
    a.write("ds", {"old": "1"}, T1)
    await a.sync("ds")
    a.store.mark_dataset_deleted(ID, "ds")
    a.write("ds", {"new": "2"}, T2)
    result = await a.sync("ds")
    assert not result.deleted and result.sync_count == 3
    assert server.values(ID, "ds") == {"new": "2"}
    state = a.store.get_dataset(ID, "ds")
    assert state is not None and not state.deleted_pending and state.last_sync_count == 3


async def test_pulls_follow_every_page() -> None:
    server = MemoryServer(page_size=2)
    a, b = device(server, "dev-a"), device(server, "dev-b")
    a.write("ds", {f"k{i}": str(i) for i in range(5)}, T1)
    await a.sync("ds")
    result = await b.sync("ds")
    assert result.pulled == 5 and len(b.values("ds")) == 5
    assert [c.method for c in backend_of(b).calls].count("list_records") == 3


async def test_merged_datasets_are_reported_and_can_stop_the_sync(server: MemoryServer) -> None:
    guest = device(server, "dev-g", identity="guest-1")
    guest.write("ds", {"k": "from guest"}, T1)
    await guest.sync("ds")
    a = device(server, "dev-a")
    a.write("ds", {"k": "mine"}, T2)
    assert server.merge_identity("guest-1", ID) == ["ds.guest-1"]
    told: list[tuple[str, list[str]]] = []
    stopped = await a.sync(
        "ds", on_datasets_merged=lambda n, names: told.append((n, names)) or False
    )
    assert told == [("ds", ["ds.guest-1"])]
    assert stopped.merged_dataset_names == ("ds.guest-1",) and stopped.pushed == 0
    result = await a.sync("ds")  # no callback: continue
    assert result.pushed == 1 and result.merged_dataset_names == ("ds.guest-1",)
    await a.sync("ds.guest-1")
    assert a.values("ds.guest-1") == {"k": "from guest"}


async def test_identities_never_see_each_others_data(server: MemoryServer) -> None:
    a, other = device(server, "dev-a"), device(server, "dev-o", identity="identity-2")
    a.write("ds", {"secret": "a"}, T1)
    await a.sync("ds")
    result = await other.sync("ds")
    assert result.pulled == 0 and other.values("ds") == {}
    assert server.list_datasets("identity-2") == []


# ---- SQLite files, store calls on one writer thread ------------------------------------------
@pytest.fixture
async def writer() -> AsyncIterator[Callable[..., Any]]:
    pool = ThreadPoolExecutor(1, thread_name_prefix="store-writer")

    async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args))

    yield run_blocking
    pool.shutdown(wait=True)


async def test_devices_on_sqlite_files_converge(
    server: MemoryServer, tmp_path: Path, writer: Callable[..., Any]
) -> None:
    stores = [SQLiteStore(tmp_path / f"{n}.db", device_id=n) for n in ("dev-a", "dev-b")]
    a, b = (Device(s, MemoryBackend(server, ID), ID, {"run_blocking": writer}) for s in stores)
    try:
        a.write("ds", {"k": "a", "x": "1"}, T1)
        b.write("ds", {"k": "b"}, T2)
        await a.sync("ds")
        result = await b.sync("ds")
        await a.sync("ds")
        assert len(result.conflicts) == 1
        assert a.values("ds") == b.values("ds") == {"k": "b", "x": "1"}
    finally:
        for store in stores:
            store.close()
    reopened = SQLiteStore(tmp_path / "dev-a.db")
    try:
        state = reopened.get_dataset(ID, "ds")
        assert state is not None and state.last_sync_count == server.sync_count(ID, "ds")
        assert reopened.dirty_records(ID, "ds") == []
    finally:
        reopened.close()
