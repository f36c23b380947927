"""Client lifecycle hazards: identity switches at construction, closed clients, bad arguments,
callbacks of the blocking facade, partial failures in synchronize_all, push coalescing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import cogsync
from cogsync import AsyncClient, Client, Config
from cogsync.demo import developer_login
from cogsync.push import PushScheduler
from cogsync.server.runner import EmbeddedServer
from cogsync.testing.servers import developer_logins


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EmbeddedServer]:
    async with EmbeddedServer(tmp_path / "server", port=0) as srv:
        yield srv


_logins = developer_logins


async def test_constructor_logins_on_guest_device_merge_instead_of_switching_silently(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    logins = await _logins(server, "alice")
    async with AsyncClient(server.config, db_path=tmp_path / "phone.db", logins=logins) as phone:
        ds = await phone.dataset("prefs")
        await ds.put("theme", "dark")
        await ds.synchronize()
    db = tmp_path / "tablet.db"
    async with AsyncClient(server.config, db_path=db) as tablet:  # a guest first
        guest = await tablet.get_identity_id()
        ds = await tablet.dataset("prefs")
        await ds.put("theme", "guest-choice")
        await ds.synchronize()
    async with AsyncClient(server.config, db_path=db, logins=logins) as tablet:  # app restart
        results = await tablet.synchronize_all()
        assert tablet.identity_id != guest
        assert set(results) == {"prefs", f"prefs.{guest}"}
        assert await (await tablet.dataset("prefs")).get("theme") == "dark"
        assert await (await tablet.dataset(f"prefs.{guest}")).get("theme") == "guest-choice"


async def test_closed_async_client_raises_usage_error(tmp_path: Path) -> None:
    client = AsyncClient(db_path=tmp_path / "d.db")
    ds = await client.dataset("x")
    await client.close()
    with pytest.raises(cogsync.UsageError):
        await ds.put("k", "v")
    with pytest.raises(cogsync.UsageError):
        await client.dataset("y")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"config": "cogsync.json"}, cogsync.ConfigError),
        ({"config": {"region": "x"}}, cogsync.ConfigError),
        ({"db_path": 123}, cogsync.UsageError),
        ({"logins": "token"}, cogsync.UsageError),
        ({"identity_id": 5}, cogsync.UsageError),
    ],
)
def test_bad_arguments_are_typed_errors(
    tmp_path: Path, kwargs: dict[str, object], error: type[Exception]
) -> None:
    args: dict[str, object] = {"db_path": tmp_path / "d.db", **kwargs}
    config = args.pop("config", None)
    with pytest.raises(error):
        Client(config, **args)  # type: ignore[arg-type]


def test_unopenable_device_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(cogsync.ConfigError):
        Client(db_path=tmp_path / "missing-dir" / "d.db")
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(cogsync.ConfigError):
        Client(db_path=tmp_path / "junk.db")


def test_corrupt_config_file_is_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "cogsync.json"
    bad.write_bytes(b"\xff\xfe{")
    with pytest.raises(cogsync.ConfigError):
        Config.load(bad)
    bad.write_text("{}")
    with pytest.raises(cogsync.ConfigError):
        Config.load(bad)


def test_blocking_callbacks_may_use_the_client(tmp_path: Path) -> None:
    with EmbeddedServer(tmp_path / "s", port=0) as srv:
        key = srv.admin_credentials
        logins = developer_login(srv.config, key.access_key_id, key.secret_access_key, "u")
        with (
            Client(srv.config, db_path=tmp_path / "a.db", logins=logins) as a,
            Client(srv.config, db_path=tmp_path / "b.db", logins=logins) as b,
        ):
            a.dataset("d").put("k", "from-a")
            a.dataset("d").synchronize()
            b.dataset("d").put("k", "from-b")
            seen: list[str | None] = []

            def resolver(name: str, conflicts: list[cogsync.Conflict]) -> list[cogsync.Resolution]:
                seen.append(b.dataset("d").get("k"))  # re-enters the blocking client
                return [c.resolve_with_remote_record() for c in conflicts]

            b.dataset("d").synchronize(on_conflict=resolver)
            assert seen == ["from-b"]
            assert b.dataset("d").get("k") == "from-a"


async def test_synchronize_all_tries_every_dataset(server: EmbeddedServer, tmp_path: Path) -> None:
    async with AsyncClient(server.config, db_path=tmp_path / "d.db") as client:
        for name in ("a", "b", "c"):
            await (await client.dataset(name)).put("k", name)

        def refuse(dataset: str, conflicts: list[cogsync.Conflict]) -> list[cogsync.Resolution]:
            return []

        # Make "a" fail: another device wrote it, and the resolver answers nothing.
        other = await _logins(server, "x")  # unrelated identity, just to prove isolation
        assert other
        async with AsyncClient(
            server.config, db_path=tmp_path / "o.db", identity_id=await client.get_identity_id()
        ) as twin:
            await (await twin.dataset("a")).put("k", "twin")
            await twin.synchronize("a")
        with pytest.raises(cogsync.ConflictError) as info:
            await client.synchronize_all(on_conflict=refuse)
        assert set(info.value.results) == {"b", "c"}  # type: ignore[attr-defined]
        assert set(info.value.errors) == {"a"}  # type: ignore[attr-defined]
        assert not (await (await client.dataset("c")).record("k")).dirty  # type: ignore[union-attr]


async def test_push_scheduler_reruns_when_poked_during_a_sync() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    runs: list[str] = []

    async def sync(name: str) -> None:
        runs.append(name)
        started.set()
        await release.wait()

    scheduler = PushScheduler(sync, debounce=0.01)
    scheduler.poke("d")
    await started.wait()
    scheduler.poke("d")  # arrives while the first sync runs
    scheduler.poke("d")  # coalesced with the previous one
    release.set()
    await asyncio.sleep(0.1)
    assert runs == ["d", "d"]
    await scheduler.close()


async def test_wipe_cancels_deferred_syncs(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/"
    dead = Config("us-east-1", "us-east-1:pool", url, url, url)
    async with AsyncClient(dead, db_path=tmp_path / "d.db") as client:
        await (await client.dataset("d")).put("k", "v")
        assert await client.synchronize_on_connectivity("d") is None
        await client.wipe_data(force=True)
        assert client._retry_task is None
        assert client.identity_id is None
        assert threading.active_count() >= 1
