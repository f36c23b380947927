"""AsyncClient against a real embedded `cogsync serve`: identity, login/merge, wipe, deletion."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import cogsync
from cogsync import AsyncClient, Config
from cogsync.server.runner import EmbeddedServer
from cogsync.testing.servers import developer_logins


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EmbeddedServer]:
    async with EmbeddedServer(tmp_path / "server", port=0) as srv:
        yield srv


_logins = developer_logins


async def test_identity_obtained_once_and_cached(server: EmbeddedServer, tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    async with AsyncClient(server.config, db_path=db) as client:
        assert client.identity_id is None
        identity = await client.get_identity_id()
        assert identity.startswith(server.config.region + ":")
    dead = dataclasses.replace(server.config, identity_endpoint="http://127.0.0.1:9/")
    async with AsyncClient(dead, db_path=db) as client:  # no network needed any more
        assert await client.get_identity_id() == identity


async def test_offline_sync_keeps_local_data(server: EmbeddedServer, tmp_path: Path) -> None:
    dead_url = "http://127.0.0.1:9/"
    dead = Config(
        server.config.region, server.config.identity_pool_id, dead_url, dead_url, dead_url
    )
    async with AsyncClient(dead, db_path=tmp_path / "d.db") as client:
        ds = await client.dataset("notes")
        await ds.put("k", "v")
        with pytest.raises(cogsync.OfflineError):
            await ds.synchronize()
        assert await ds.get("k") == "v"
        assert (await ds.record("k")).dirty  # type: ignore[union-attr]


async def test_refused_credentials_are_not_authorized(tmp_path: Path) -> None:
    async with (
        EmbeddedServer(tmp_path / "s", port=0, allow_guests=False) as srv,
        AsyncClient(srv.config, db_path=tmp_path / "d.db") as client,
    ):
        ds = await client.dataset("notes")
        await ds.put("k", "v")
        with pytest.raises(cogsync.NotAuthorizedError):
            await ds.synchronize()
        assert await ds.get("k") == "v"


async def test_login_into_identity_with_data_merges(server: EmbeddedServer, tmp_path: Path) -> None:
    logins = await _logins(server, "alice")
    async with AsyncClient(server.config, db_path=tmp_path / "phone.db", logins=logins) as phone:
        prefs = await phone.dataset("prefs")
        await prefs.put("theme", "dark")
        await prefs.synchronize()
    async with AsyncClient(server.config, db_path=tmp_path / "tablet.db") as tablet:
        guest = await tablet.get_identity_id()
        prefs = await tablet.dataset("prefs")
        await prefs.put("theme", "guest-choice")
        merged: list[tuple[str, list[str]]] = []
        alice = await tablet.login(logins, on_datasets_merged=lambda n, m: merged.append((n, m)))
        assert alice != guest and tablet.identity_id == alice
        assert merged == [("prefs", [f"prefs.{guest}"])]
        results = await tablet.synchronize_all()
        assert set(results) == {"prefs", f"prefs.{guest}"}
        assert await (await tablet.dataset("prefs")).get("theme") == "dark"
        kept = await tablet.dataset(f"prefs.{guest}")
        assert await kept.get("theme") == "guest-choice"  # nothing dropped
    async with AsyncClient(server.config, db_path=tmp_path / "p2.db", logins=logins) as phone:
        names = {m.name for m in await phone.refresh_dataset_metadata()}
        assert names == {"prefs", f"prefs.{guest}"}


async def test_login_into_new_identity_moves_data(server: EmbeddedServer, tmp_path: Path) -> None:
    async with AsyncClient(server.config, db_path=tmp_path / "d.db") as client:
        await client.get_identity_id()
        await (await client.dataset("notes")).put("n", "offline")
        merged: list[object] = []
        await client.login(await _logins(server, "bob"), on_datasets_merged=merged.append)
        assert merged == []
        assert [m.name for m in await client.list_datasets()] == ["notes"]
        result = await client.synchronize("notes")
        assert result.pushed == 1


async def test_refresh_metadata_lists_datasets_never_opened(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    logins = await _logins(server, "carol")
    async with AsyncClient(server.config, db_path=tmp_path / "a.db", logins=logins) as a:
        for name in ("one", "two"):
            ds = await a.dataset(name)
            await ds.put("k", name)
            await ds.synchronize()
    async with AsyncClient(server.config, db_path=tmp_path / "b.db", logins=logins) as b:
        meta = {m.name: m for m in await b.refresh_dataset_metadata()}
        assert set(meta) == {"one", "two"} and meta["one"].sync_count == 1
        results = await b.synchronize_all()
        assert {n: r.pulled for n, r in results.items()} == {"one": 1, "two": 1}
        assert await (await b.dataset("two")).get("k") == "two"


@pytest.mark.parametrize("drop", [True, False])
async def test_dataset_deleted_elsewhere(
    server: EmbeddedServer, tmp_path: Path, drop: bool
) -> None:
    logins = await _logins(server, f"dave-{drop}")
    async with (
        AsyncClient(server.config, db_path=tmp_path / "a.db", logins=logins) as a,
        AsyncClient(server.config, db_path=tmp_path / "b.db", logins=logins) as b,
    ):
        da = await a.dataset("list")
        await da.put_all({"x": "1", "y": "2"})
        await da.synchronize()
        db_ = await b.dataset("list")
        await db_.synchronize()
        await da.delete()
        assert (await da.synchronize()).deleted
        seen: list[str] = []

        def on_deleted(name: str) -> bool:
            seen.append(name)
            return drop

        result = await db_.synchronize(on_dataset_deleted=on_deleted)
        assert seen == ["list"]
        if drop:
            assert await db_.get_all() == {}
            assert "list" not in {m.name for m in await b.list_datasets()}
        else:
            assert await db_.get_all() == {"x": "1", "y": "2"}
            assert not result.deleted
            await da.synchronize()
            assert await da.get_all() == {"x": "1", "y": "2"}  # recreated from b


async def test_wipe_data(server: EmbeddedServer, tmp_path: Path) -> None:
    async with AsyncClient(server.config, db_path=tmp_path / "d.db") as client:
        ds = await client.dataset("notes")
        await ds.put("k", "v")
        with pytest.raises(cogsync.UnsyncedChangesError):
            await client.wipe_data()
        await ds.synchronize()
        await client.wipe_data()
        assert client.identity_id is None
        assert await client.list_datasets() == []
        await (await client.dataset("again")).put("k", "v")
        await client.wipe_data(force=True)
        assert await client.list_datasets() == []


async def test_client_adopts_the_servers_limits(tmp_path: Path) -> None:
    from cogsync import Limits

    raised = Limits(max_records=2000, max_dataset_bytes=2 * 1_048_576)
    async with (
        EmbeddedServer(tmp_path / "s", port=0, limits=raised) as srv,
        AsyncClient(srv.config, db_path=tmp_path / "d.db") as client,
    ):
        ds = await client.dataset("big")
        with pytest.raises(cogsync.RecordLimitExceededError):
            await ds.put_all({f"k{i}": "v" for i in range(1500)})  # default limit: 1,024
        await ds.synchronize()  # first contact: the server announces its limits
        assert client.limits.max_records == 2000
        await ds.put_all({f"k{i}": "v" for i in range(1500)})
        assert (await ds.synchronize()).pushed == 1500
    lowered = Limits(max_records=3)
    async with (
        EmbeddedServer(tmp_path / "s2", port=0, limits=lowered) as srv,
        AsyncClient(srv.config, db_path=tmp_path / "d2.db") as client,
    ):
        ds = await client.dataset("small")
        await ds.synchronize()
        await ds.put_all({"a": "1", "b": "2", "c": "3"})
        with pytest.raises(cogsync.RecordLimitExceededError):
            await ds.put("d", "4")  # refused locally, the same as the server would


async def test_values_changed_by_a_sync_trigger_reach_the_pushing_device(tmp_path: Path) -> None:
    from dataclasses import replace

    from cogsync.models import RecordPatch
    from cogsync.server.hooks import ServerHooks

    def shout(identity: str, dataset: str, patches: list[RecordPatch]) -> list[RecordPatch]:
        return [replace(p, value=p.value.upper()) if p.value else p for p in patches]

    async with (
        EmbeddedServer(tmp_path / "s", port=0, hooks=ServerHooks(sync_trigger=shout)) as srv,
        AsyncClient(srv.config, db_path=tmp_path / "d.db") as client,
    ):
        ds = await client.dataset("notes")
        await ds.put("k", "hello")
        await ds.synchronize()
        await ds.synchronize()  # the batch came back modified: the device learns it
        assert await ds.get("k") == "HELLO"
        assert not (await ds.record("k")).dirty  # type: ignore[union-attr]
        await ds.put("other", "quiet")
        await ds.synchronize()
        await ds.synchronize()
        assert await ds.get_all() == {"k": "HELLO", "other": "QUIET"}
