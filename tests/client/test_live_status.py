"""Status and change events: pending counts, last errors, and the origin of every change."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import cogsync
from cogsync import AsyncClient, ChangeEvent, Client, ClientStatus
from cogsync._store_thread import StoreThread
from cogsync.dataset import LocalView
from cogsync.engine.commands import ApplySync
from cogsync.exceptions import StorageError
from cogsync.live import LiveState
from cogsync.models import Record, RecordWrite, SyncWrites
from cogsync.server.runner import EmbeddedServer
from cogsync.store.sqlite import SQLiteStore
from cogsync.testing.servers import developer_logins


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EmbeddedServer]:
    async with EmbeddedServer(tmp_path / "server", port=0) as srv:
        yield srv


async def _next(events: list[ChangeEvent], ready: asyncio.Event, timeout: float = 10.0) -> None:
    await asyncio.wait_for(ready.wait(), timeout)
    ready.clear()


async def test_pending_changes_exact_before_and_after_sync_and_failure(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    logins = await developer_logins(server, "pat")
    async with AsyncClient(server.config, db_path=tmp_path / "d.db", logins=logins) as client:
        status = await client.status()
        assert status.online is None and not status.auto_sync and dict(status.datasets) == {}
        prefs = await client.dataset("prefs")
        await prefs.put_all({"a": "1", "b": "2", "c": "3"})
        await prefs.remove("c")  # never synced: nothing left to push for it
        assert (await prefs.status()).pending_changes == 2
        await prefs.synchronize()
        after = await prefs.status()
        assert after.pending_changes == 0 and not after.syncing
        assert after.last_synced_at is not None and after.last_error is None
        assert after.sync_count >= 1
        assert (await client.status()).online is True

        await prefs.put("a", "changed")
        await prefs.put("d", "4")
        await prefs.remove("b")  # synced: its removal must be pushed
        assert (await client.status()).datasets["prefs"].pending_changes == 3

    dead_url = "http://127.0.0.1:9/"
    dead = dataclasses.replace(
        server.config, graphql_url=dead_url, realtime_url=dead_url, identity_endpoint=dead_url
    )
    async with AsyncClient(dead, db_path=tmp_path / "d.db", logins=logins) as client:
        prefs = await client.dataset("prefs")
        with pytest.raises(cogsync.OfflineError) as failure:
            await prefs.synchronize()
        failed = await prefs.status()
        assert failed.pending_changes == 3 and not failed.syncing
        assert failed.last_error is failure.value
        assert (await client.status()).online is False


async def test_events_local_and_remote_with_streams(server: EmbeddedServer, tmp_path: Path) -> None:
    logins = await developer_logins(server, "eve")
    async with (
        AsyncClient(server.config, db_path=tmp_path / "a.db", logins=logins) as a,
        AsyncClient(server.config, db_path=tmp_path / "b.db", logins=logins) as b,
    ):
        heard: list[ChangeEvent] = []
        ready = asyncio.Event()

        def listener(event: ChangeEvent) -> None:
            heard.append(event)
            ready.set()

        subscription = b.on_change(listener)
        stream = b.changes()
        mine = await b.dataset("notes")
        await mine.put("x", "1")
        await _next(heard, ready)
        assert heard == [ChangeEvent("notes", ("x",), "local")]
        assert await anext(stream) == heard[0]

        theirs = await a.dataset("notes")
        await theirs.put_all({"y": "2", "z": "3"})
        await theirs.synchronize()
        await mine.synchronize()
        await _next(heard, ready)
        assert heard[-1] == ChangeEvent("notes", ("y", "z"), "remote")
        assert await anext(stream) == heard[-1]

        subscription.cancel()
        await mine.put("w", "4")
        assert await anext(stream) == ChangeEvent("notes", ("w",), "local")
        await asyncio.sleep(0.1)
        assert len(heard) == 2
        await stream.aclose()


_OTHER_PROCESS = """
import sys
from cogsync import Client
with Client(db_path=sys.argv[1]) as client:
    client.dataset("shared").put_all({"from-a": "process", "other": "1"})
"""


async def test_write_from_another_process_is_a_process_event(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    async with AsyncClient(db_path=db) as client:
        shared = await client.dataset("shared")
        await shared.put("mine", "1")
        stream = client.changes()
        await asyncio.sleep(0.7)  # the watcher has seen the file once
        await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", _OTHER_PROCESS, str(db)], check=True
        )
        event = await asyncio.wait_for(anext(stream), 10)
        assert event == ChangeEvent("shared", ("from-a", "other"), "process")
        assert (await shared.status()).pending_changes == 3
        await shared.put("mine", "2")
        assert await asyncio.wait_for(anext(stream), 10) == ChangeEvent(
            "shared", ("mine",), "local"
        )


def test_blocking_client_status_and_callbacks_off_loop(tmp_path: Path) -> None:
    seen: list[tuple[ChangeEvent, str]] = []
    statuses: list[ClientStatus] = []
    done = threading.Event()

    def on_change(event: ChangeEvent) -> None:
        seen.append((event, threading.current_thread().name))
        done.set()

    with Client(db_path=tmp_path / "d.db") as client:
        client.on_change(on_change)
        client.on_status(statuses.append)
        ds = client.dataset("prefs")
        ds.put("k", "v")
        assert done.wait(10)
        assert seen[0][0] == ChangeEvent("prefs", ("k",), "local")
        assert seen[0][1] != "cogsync-loop"
        assert ds.status().pending_changes == 1
        status = client.status()
        assert status.datasets["prefs"].pending_changes == 1 and status.online is None
    assert statuses and statuses[-1].datasets["prefs"].pending_changes == 1


_ONE_KEY_PROCESS = """
import sys
from cogsync import Client
with Client(db_path=sys.argv[1]) as client:
    client.dataset("shared").put("from-process", "1")
"""


async def test_after_a_sync_another_process_write_names_only_its_key(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    """A sync updates the watcher's picture of the keys it wrote: none is reported again."""
    logins = await developer_logins(server, "watcher")
    db = tmp_path / "b.db"
    async with (
        AsyncClient(server.config, db_path=tmp_path / "a.db", logins=logins) as a,
        AsyncClient(server.config, db_path=db, logins=logins) as b,
    ):
        theirs = await a.dataset("shared")
        await theirs.put_all({"pulled": "1", "both": "a"})
        await theirs.synchronize()
        mine = await b.dataset("shared")
        await mine.put_all({"pushed": "1", "both": "b"})
        await asyncio.sleep(0.7)  # the watcher has seen the file once
        stream = b.changes()
        result = await mine.synchronize()
        assert (result.pulled, result.pushed) == (2, 2)
        assert await asyncio.wait_for(anext(stream), 10) == ChangeEvent(
            "shared", ("both", "pulled"), "remote"
        )
        await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", _ONE_KEY_PROCESS, str(db)], check=True
        )
        event = await asyncio.wait_for(anext(stream), 10)
        assert event == ChangeEvent("shared", ("from-process",), "process")
        await stream.aclose()


async def _next_of_other_processes(stream: Any) -> ChangeEvent:
    """The next event with origin "process" (this client's own "local" ones skipped)."""
    async for event in stream:
        if event.origin == "process":
            return event  # type: ignore[no-any-return]
    raise AssertionError("the stream ended")


async def _only_another_process_is_reported(
    tmp_path: Path, writes: Sequence[RecordWrite], *, app_first: bool
) -> None:
    """A sync applies ``writes`` to a seeded file as the driver does (``on_applied`` in the
    same store call); the app writes key "a" (and tells the watcher, as `AsyncDataset`
    does) before the sync applies if ``app_first``, else after it but before the sync ends.
    Then another process writes "c": the watcher reports that key alone."""
    store = SQLiteStore(tmp_path / "d.db")
    thread = StoreThread()
    me = store.provisional_owner()
    live = LiveState(LocalView(store, lambda: me, thread.run), poll_interval=0.05)
    now = datetime.now(UTC)

    async def app_writes() -> None:
        await thread.run(store.write_local, me, "ds", {"a": "app"}, now)
        await live.local_write("ds", ("a",))

    async def sync(observe: Any, on_applied: Any) -> None:
        apply = ApplySync("ds", writes, last_sync_count=1)

        def applied() -> list[str]:
            skipped = store.apply_sync(me, "ds", writes)
            assert skipped == (["a"] if app_first else [])
            on_applied(store, me, apply, skipped)
            return skipped

        if app_first:
            await app_writes()
        observe(apply, await thread.run(applied))
        if not app_first:
            await app_writes()

    try:
        await thread.run(store.write_local, me, "ds", {"seed": "0", "u": "0"}, now)
        live.start()
        await asyncio.sleep(0.3)  # the watcher has seen the file once
        stream = live.changes.stream()
        await live.track("ds", sync)
        other = SQLiteStore(tmp_path / "d.db")
        other.write_local(me, "ds", {"c": "other process"}, now)
        other.close()
        event = await asyncio.wait_for(_next_of_other_processes(stream), 10)
        assert event == ChangeEvent("ds", ("c",), "process")
        await stream.aclose()
    finally:
        await live.aclose()
        await thread.close_store(store.close)
        thread.shutdown()


async def test_the_watcher_reads_back_what_a_sync_did_not_write_as_planned(
    tmp_path: Path,
) -> None:
    """Keys a sync's revision guard skipped (the app wrote them first) and keys it wrote
    without a guard are read back where the sync applied."""
    guarded = [RecordWrite(Record("u", "1", 1), None)]
    writes = SyncWrites(guarded, [Record(k, "1", 1) for k in "ab"])  # "a" is skipped
    await _only_another_process_is_reported(tmp_path, writes, app_first=True)


async def test_the_watcher_keeps_an_app_write_made_after_a_sync_applied(tmp_path: Path) -> None:
    """A key the app writes between a sync's last store write and its end is seen as it
    is in the file, not as the sync wrote it."""
    writes = tuple(RecordWrite(Record(k, "1", 1), expected_revision=0) for k in "ab")
    await _only_another_process_is_reported(tmp_path, writes, app_first=False)


async def test_a_failed_read_back_leaves_the_sync_applied(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """If reading back what a sync wrote fails, the sync still succeeds (its writes are
    committed); the watcher only starts its picture again."""
    store = SQLiteStore(tmp_path / "d.db")
    thread = StoreThread()
    me = store.provisional_owner()
    live = LiveState(LocalView(store, lambda: me, thread.run), poll_interval=0.05)
    writes = (RecordWrite(Record("k", "1", 1), None),)  # unguarded: read back

    def broken(*args: Any) -> Any:
        raise StorageError("disk I/O error")

    async def sync(observe: Any, on_applied: Any) -> str:
        def applied() -> list[str]:
            skipped = store.apply_sync(me, "ds", writes)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(store, "record_states", broken)
                on_applied(store, me, ApplySync("ds", writes), skipped)
            return skipped

        observe(ApplySync("ds", writes), await thread.run(applied))
        return "done"

    try:
        await thread.run(store.write_local, me, "ds", {"seed": "0"}, datetime.now(UTC))
        live.start()
        await asyncio.sleep(0.3)  # the watcher has seen the file once
        assert await live.track("ds", sync) == "done"
        assert "cannot note what a sync of 'ds' wrote" in caplog.text
        record = await thread.run(store.get_record, me, "ds", "k")
        assert record is not None and record.value == "1"
    finally:
        await live.aclose()
        await thread.close_store(store.close)
        thread.shutdown()
