"""Identities on one device, against a real `cogsync serve` and real device files.

An authenticated identity's data is never moved to another identity: another user who logs
in (at open or with `login`) sees none of it, locally or on the server, and it syncs, unsynced
edits included, when its owner logs in again. Only a guest's data moves. Writes racing an
identity change end where the change leaves the data.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

import cogsync
from cogsync import AsyncClient
from cogsync.server.runner import EmbeddedServer
from cogsync.store.sqlite import SQLiteStore
from cogsync.testing.servers import developer_logins


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EmbeddedServer]:
    async with EmbeddedServer(tmp_path / "server", port=0) as srv:
        yield srv


def on_server(server: EmbeddedServer, identity_id: str) -> dict[str, dict[str, str]]:
    """The identity's live datasets as the server stores them: name -> key -> value."""
    storage = server.storage
    assert storage is not None
    result = {}
    for ds in storage.list_datasets(identity_id).datasets:
        if not ds.deleted:
            page = storage.list_records(identity_id, ds.name, 0)
            result[ds.name] = {r.key: r.value for r in page.records if r.value is not None}
    return result


def offline(server: EmbeddedServer) -> cogsync.Config:
    dead = "http://127.0.0.1:9/"
    return dataclasses.replace(
        server.config, graphql_url=dead, realtime_url=dead, identity_endpoint=dead
    )


async def alice_with_unsynced_edit(server: EmbeddedServer, db: Path) -> tuple[str, dict[str, str]]:
    """A device of authenticated alice: a synced record and an unsynced edit."""
    alice = await developer_logins(server, "alice")
    async with AsyncClient(server.config, db_path=db, logins=alice) as client:
        diary = await client.dataset("diary")
        await diary.put("synced", "alice's secret")
        await diary.synchronize()
        await diary.put("unsynced", "alice's draft")
        return await client.get_identity_id(), alice


@pytest.mark.parametrize("how", ["constructor", "login"])
async def test_another_user_never_sees_an_authenticated_identitys_data(
    server: EmbeddedServer, tmp_path: Path, how: str
) -> None:
    db = tmp_path / "phone.db"
    alice_id, alice = await alice_with_unsynced_edit(server, db)
    bob = await developer_logins(server, "bob")
    if how == "constructor":
        client = AsyncClient(server.config, db_path=db, logins=bob)
        assert await client.list_datasets() == []  # before any contact, nothing of alice's
        assert await (await client.dataset("diary")).get_all() == {}
    else:
        client = AsyncClient(server.config, db_path=db, logins=alice)
        await client.get_identity_id()
        merged: list[object] = []
        await client.login(bob, on_datasets_merged=lambda *a: merged.append(a))
        assert merged == []
    async with client:
        bob_id = await client.get_identity_id()
        assert bob_id != alice_id
        diary = await client.dataset("diary")
        await diary.put("mine", "bob's")
        await client.synchronize_all()
        assert await diary.get_all() == {"mine": "bob's"}
        assert {m.name: m.record_count for m in await client.list_datasets()} == {"diary": 1}
        assert [m.name for m in await client.refresh_dataset_metadata()] == ["diary"]
    assert on_server(server, bob_id) == {"diary": {"mine": "bob's"}}
    assert on_server(server, alice_id) == {"diary": {"synced": "alice's secret"}}
    with closing(SQLiteStore(db)) as store:  # alice's unsynced edit is kept, under alice
        draft = store.get_record(alice_id, "diary", "unsynced")
        assert draft is not None and draft.value == "alice's draft" and draft.dirty
    # Alice back on the device (offline first: recognised from her token), then synced.
    async with AsyncClient(offline(server), db_path=db, logins=alice) as client:
        diary = await client.dataset("diary")
        assert await diary.get_all() == {"synced": "alice's secret", "unsynced": "alice's draft"}
    async with AsyncClient(server.config, db_path=db, logins=alice) as client:
        assert await client.get_identity_id() == alice_id
        result = await client.synchronize("diary")
        assert result.pushed == 1
    assert on_server(server, alice_id) == {
        "diary": {"synced": "alice's secret", "unsynced": "alice's draft"}
    }
    assert on_server(server, bob_id) == {"diary": {"mine": "bob's"}}


async def test_switching_back_and_forth_keeps_each_users_data(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    db = tmp_path / "shared.db"
    alice_id, alice = await alice_with_unsynced_edit(server, db)
    bob = await developer_logins(server, "bob")
    async with AsyncClient(server.config, db_path=db, logins=alice) as client:
        await client.login(bob)
        await (await client.dataset("todo")).put("k", "bob's")
        assert [m.name for m in await client.list_datasets()] == ["todo"]
        assert await client.login(alice) == alice_id
        assert sorted(m.name for m in await client.list_datasets()) == ["diary"]
        assert await (await client.dataset("diary")).get("unsynced") == "alice's draft"
        await client.synchronize_all()
    assert on_server(server, alice_id)["diary"]["unsynced"] == "alice's draft"
    assert "diary" not in on_server(server, await _id_of(server, bob))


async def _id_of(server: EmbeddedServer, logins: dict[str, str]) -> str:
    from cogsync.auth.cognito import CognitoIdentity

    return await CognitoIdentity(server.config, logins=logins).get_identity_id()


async def test_wipe_data_still_clears_a_device_with_another_identitys_edits(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    db = tmp_path / "d.db"
    await alice_with_unsynced_edit(server, db)
    async with AsyncClient(
        server.config, db_path=db, logins=await developer_logins(server, "bob")
    ) as client:
        await client.get_identity_id()
        with pytest.raises(cogsync.UnsyncedChangesError, match="another identity"):
            await client.wipe_data()
        await client.wipe_data(force=True)
        assert client.identity_id is None
    with closing(SQLiteStore(db)) as store:
        assert not store.has_unsynced_changes() and store.known_identities() == {}


async def test_an_identity_of_unknown_kind_is_never_moved(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    """A device file from before the store remembered kinds: its identity's data stays."""
    db, old_id = tmp_path / "old.db", f"{server.config.region}:{uuid.uuid4()}"
    with closing(SQLiteStore(db)) as store:  # no kind remembered for old_id
        store.write_local(old_id, "notes", {"k": "old"}, datetime.now(UTC))
        store.set_identity_id(old_id)
    async with AsyncClient(
        server.config, db_path=db, logins=await developer_logins(server, "eve")
    ) as client:
        assert await client.list_datasets() == []
        await client.synchronize_all()
        assert await client.list_datasets() == []
    with closing(SQLiteStore(db)) as store:
        record = store.get_record(old_id, "notes", "k")
        assert record is not None and record.dirty


async def test_a_guest_still_moves_into_the_identity_it_logs_in_to(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    db = tmp_path / "d.db"
    async with AsyncClient(server.config, db_path=db) as client:
        guest = await client.get_identity_id()
        await (await client.dataset("notes")).put("n", "as a guest")
    async with AsyncClient(
        server.config, db_path=db, logins=await developer_logins(server, "gus")
    ) as client:
        assert await (await client.dataset("notes")).get("n") == "as a guest"
        gus = await client.get_identity_id()
        assert gus != guest
        await client.synchronize_all()
    assert on_server(server, gus) == {"notes": {"n": "as a guest"}}


class HookedStore(SQLiteStore):
    """A device store that runs ``hook`` (once) on the store thread in the middle of a move."""

    hook: threading.Event | None = None
    resume: threading.Event | None = None

    def rename_dataset(self, owner: str, name: str, new_owner: str, new_name: str) -> None:
        super().rename_dataset(owner, name, new_owner, new_name)
        if self.hook is not None and self.resume is not None:
            self.hook.set()
            assert self.resume.wait(10)
            self.hook = None


async def test_every_write_acknowledged_during_a_guest_move_ends_under_the_new_owner(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    store = HookedStore(tmp_path / "d.db")
    async with AsyncClient(server.config, store=store) as client:
        await client.get_identity_id()
        notes = await client.dataset("notes")
        await notes.put("before", "1")
        store.hook, store.resume = threading.Event(), threading.Event()
        login = asyncio.create_task(client.login(await developer_logins(server, "hal")))
        assert await asyncio.to_thread(store.hook.wait, 10)
        # The move is half done on the store thread: queue puts behind it, then let it end.
        puts = [asyncio.create_task(notes.put(f"during{i}", str(i))) for i in range(20)]
        await asyncio.sleep(0.05)
        store.resume.set()
        hal = await login
        await asyncio.gather(*puts)
        puts = [asyncio.create_task(notes.put(f"after{i}", str(i))) for i in range(20)]
        await asyncio.gather(*puts)
        expected = {"before": "1"} | {f"during{i}": str(i) for i in range(20)}
        expected |= {f"after{i}": str(i) for i in range(20)}
        assert await notes.get_all() == expected
        await client.synchronize_all()
    assert on_server(server, hal) == {"notes": expected}


async def test_concurrent_puts_during_logins_are_all_visible_afterwards(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    """Guest -> authenticated moves with many puts in flight: nothing acknowledged is lost."""
    async with AsyncClient(server.config, db_path=tmp_path / "d.db") as client:
        await client.get_identity_id()
        notes = await client.dataset("notes")
        acknowledged: dict[str, str] = {}
        stop = asyncio.Event()

        async def writer(n: int) -> None:
            i = 0
            while not stop.is_set():
                await notes.put(f"w{n}-{i}", "v")
                acknowledged[f"w{n}-{i}"] = "v"
                i += 1
                await asyncio.sleep(0)

        writers = [asyncio.create_task(writer(n)) for n in range(4)]
        user = await client.login(await developer_logins(server, "ivy"))
        stop.set()
        await asyncio.gather(*writers)
        assert len(acknowledged) > 4
        assert await notes.get_all() == acknowledged
        await client.synchronize_all()
    assert on_server(server, user) == {"notes": acknowledged}


async def test_a_write_before_an_authenticated_switch_stays_with_its_identity(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    db = tmp_path / "d.db"
    jo, kim = await developer_logins(server, "jo"), await developer_logins(server, "kim")
    async with AsyncClient(server.config, db_path=db, logins=jo) as client:
        jo_id = await client.get_identity_id()
        notes = await client.dataset("notes")
        put = asyncio.create_task(notes.put("jo's", "x"))  # queued before the switch
        kim_id = await client.login(kim)
        await put
        assert await notes.get_all() == {}  # kim sees nothing of jo's
        await notes.put("kim's", "y")
        await client.synchronize_all()
        await client.login(jo)
        assert await notes.get_all() == {"jo's": "x"}
        await client.synchronize_all()
    assert on_server(server, jo_id) == {"notes": {"jo's": "x"}}
    assert on_server(server, kim_id) == {"notes": {"kim's": "y"}}
