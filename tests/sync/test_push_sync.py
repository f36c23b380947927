"""Push sync end to end: a change synced on one device lands on another without a sync call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cogsync.client import AsyncClient
from cogsync.models import SyncResult
from cogsync.server.realtime_limits import RealtimeLimits
from cogsync.server.runner import EmbeddedServer
from cogsync.testing.servers import developer_logins as logins_for


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EmbeddedServer]:
    async with EmbeddedServer(tmp_path / "server") as srv:
        yield srv


async def test_change_reaches_listening_device_within_two_seconds(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    logins = await logins_for(server, "alice")
    heard: list[tuple[str, SyncResult]] = []
    arrived = asyncio.Event()

    def on_change(name: str, result: SyncResult) -> None:
        heard.append((name, result))
        if result.pulled:
            arrived.set()

    async with (
        AsyncClient(server.config, db_path=tmp_path / "a.db", logins=logins) as a,
        AsyncClient(server.config, db_path=tmp_path / "b.db", logins=logins) as b,
    ):
        listening = await b.dataset("prefs")
        await b.start_push_sync(on_change)
        deadline = time.monotonic() + 10
        while not heard:  # the catch-up sync after connecting says the subscription is live
            assert time.monotonic() < deadline, "push sync never connected"
            await asyncio.sleep(0.02)
        assert heard[0][1].pulled == 0

        prefs = await a.dataset("prefs")
        await prefs.put_all({"theme": "dark", "font": "14"})
        started = time.monotonic()
        await prefs.synchronize()
        await asyncio.wait_for(arrived.wait(), timeout=2.0)
        assert time.monotonic() - started < 2.0
        assert await listening.get_all() == {"theme": "dark", "font": "14"}
        record = await listening.record("theme")
        assert record is not None and not record.dirty

        # a second change and a removal arrive the same way
        arrived.clear()
        await prefs.put("theme", "light")
        await prefs.remove("font")
        await prefs.synchronize()
        await asyncio.wait_for(arrived.wait(), timeout=2.0)
        assert await listening.get_all() == {"theme": "light"}

        await b.stop_push_sync()
        await prefs.put("theme", "blue")
        await prefs.synchronize()
        await asyncio.sleep(0.3)
        assert await listening.get("theme") == "light"  # stopped: nothing arrives by itself


async def test_other_identity_hears_nothing(server: EmbeddedServer, tmp_path: Path) -> None:
    heard: list[str] = []
    async with (
        AsyncClient(
            server.config, db_path=tmp_path / "a.db", logins=await logins_for(server, "ann")
        ) as a,
        AsyncClient(
            server.config, db_path=tmp_path / "b.db", logins=await logins_for(server, "bo")
        ) as b,
    ):
        await b.dataset("prefs")
        await b.start_push_sync(lambda name, result: heard.append(name))
        deadline = time.monotonic() + 10
        while not heard:
            assert time.monotonic() < deadline, "push sync never connected"
            await asyncio.sleep(0.02)
        prefs = await a.dataset("prefs")
        await prefs.put("secret", "ann's")
        await prefs.synchronize()
        await asyncio.sleep(0.5)
        assert heard == ["prefs"]  # only the catch-up sync after connecting
        assert await (await b.dataset("prefs")).get_all() == {}


@pytest.mark.parametrize("check_interval", [600, 0.05], ids=["on-delivery", "idle"])
async def test_push_sync_outlives_expired_credentials_without_losing_a_change(
    tmp_path: Path, check_interval: float
) -> None:
    """Credentials expire -> the server ends the subscription (at the next event, or idle
    at its next check) -> the device reconnects with fresh credentials and its catch-up
    sync brings the change made in between."""
    offset = [0.0]

    def clock() -> float:
        return time.time() + offset[0]

    realtime = RealtimeLimits(check_interval=check_interval)
    async with EmbeddedServer(
        tmp_path / "server", clock=clock, credential_lifetime=120, realtime=realtime
    ) as server:
        logins = await logins_for(server, "alice")
        arrived = asyncio.Event()
        heard: list[SyncResult] = []

        def on_change(name: str, result: SyncResult) -> None:
            heard.append(result)
            if result.pulled:
                arrived.set()

        async with AsyncClient(server.config, db_path=tmp_path / "b.db", logins=logins) as b:
            listening = await b.dataset("prefs")
            await b.start_push_sync(on_change)
            deadline = time.monotonic() + 10
            while not heard:
                assert time.monotonic() - deadline < 0, "push sync never connected"
                await asyncio.sleep(0.02)
            offset[0] = 150  # the listening device's credentials expired at the server
            async with AsyncClient(
                server.config, db_path=tmp_path / "a.db", logins=logins
            ) as a:  # a device that logs in now gets credentials valid now
                prefs = await a.dataset("prefs")
                await prefs.put("theme", "dark")
                await prefs.synchronize()
            await asyncio.wait_for(arrived.wait(), timeout=10)
            assert await listening.get("theme") == "dark"
            assert b._push.connections == 2  # the change came with the reconnect's catch-up


async def test_push_sync_limited_to_some_datasets(server: EmbeddedServer, tmp_path: Path) -> None:
    logins = await logins_for(server, "jo")
    heard: list[str] = []
    connected, arrived = asyncio.Event(), asyncio.Event()

    def on_change(name: str, result: SyncResult) -> None:
        heard.append(name)
        connected.set()
        if result.pulled:
            arrived.set()

    async with (
        AsyncClient(server.config, db_path=tmp_path / "a.db", logins=logins) as a,
        AsyncClient(server.config, db_path=tmp_path / "b.db", logins=logins) as b,
    ):
        await (await b.dataset("watched")).put("x", "0")
        await (await b.dataset("ignored")).put("x", "0")
        await b.start_push_sync(on_change, datasets=["watched"])
        await asyncio.wait_for(connected.wait(), 10)  # the catch-up sync covers "watched" only
        assert heard == ["watched"]
        for name in ("ignored", "watched"):
            ds = await a.dataset(name)
            await ds.put("y", "1")
            await ds.synchronize()
        await asyncio.wait_for(arrived.wait(), 10)
        await asyncio.sleep(0.5)
        assert set(heard) == {"watched"}
        assert await (await b.dataset("ignored")).get("y") is None
