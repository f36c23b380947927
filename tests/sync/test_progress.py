"""Progress of a first sync of many datasets: per page, monotonic, ending at the totals."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from cogsync import AsyncClient, SyncProgress
from cogsync.server.runner import EmbeddedServer
from cogsync.testing.servers import developer_logins


async def _first_sync_progress(tmp_path: Path, datasets: int, records: int) -> None:
    async with EmbeddedServer(tmp_path / "server", port=0) as server:
        logins = await developer_logins(server, "ivy")
        pushed: dict[str, list[SyncProgress]] = defaultdict(list)
        async with AsyncClient(server.config, db_path=tmp_path / "a.db", logins=logins) as a:
            for d in range(datasets):
                ds = await a.dataset(f"set{d}")
                await ds.put_all({f"key{i:05}": f"value-{d}-{i}" for i in range(records)})
            await a.synchronize_all(on_progress=lambda p: pushed[p.dataset].append(p))
        seen: dict[str, list[SyncProgress]] = defaultdict(list)

        async def on_progress(progress: SyncProgress) -> None:
            seen[progress.dataset].append(progress)

        async with AsyncClient(server.config, db_path=tmp_path / "b.db", logins=logins) as b:
            await b.synchronize_all(on_progress=on_progress)
    assert sorted(seen) == sorted(pushed) == sorted(f"set{d}" for d in range(datasets))
    for name, reports in seen.items():
        assert {p.phase for p in reports} == {"pull"}
        done = [p.records_done for p in reports]
        sizes = [p.bytes_done for p in reports]
        assert done == sorted(done) and sizes == sorted(sizes)
        assert all(p.records_done <= p.records_total for p in reports)
        assert (reports[-1].records_done, reports[-1].records_total) == (records, records)
        expected = sum(len(f"key{i:05}") + len(f"value-{name[3:]}-{i}") for i in range(records))
        assert reports[-1].bytes_done == expected
        push = [p for p in pushed[name] if p.phase == "push"]
        assert push and push[-1].records_done == push[-1].records_total == records


async def test_first_sync_progress(tmp_path: Path) -> None:
    await _first_sync_progress(tmp_path, datasets=5, records=256)


@pytest.mark.slow
async def test_first_sync_progress_20_datasets_of_1024_records(tmp_path: Path) -> None:
    await _first_sync_progress(tmp_path, datasets=20, records=1024)


def test_blocking_progress_callback_runs_off_the_loop(tmp_path: Path) -> None:
    import threading

    from cogsync import Client
    from cogsync.demo import developer_login

    with EmbeddedServer(tmp_path / "server", port=0) as server:
        key = server.admin_credentials
        logins = developer_login(server.config, key.access_key_id, key.secret_access_key, "lu")
        seen: list[tuple[SyncProgress, str]] = []
        with Client(server.config, db_path=tmp_path / "d.db", logins=logins) as client:
            ds = client.dataset("notes")
            ds.put_all({f"k{i}": "v" for i in range(50)})
            ds.synchronize(on_progress=lambda p: seen.append((p, threading.current_thread().name)))
    assert [p.records_done for p, _ in seen if p.phase == "push"][-1] == 50
    assert all(name != "cogsync-loop" for _, name in seen)
