"""``cogsync backup`` while devices write: the copy opens and holds every acknowledged batch."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from server_wire import http_client, new_identity, push

from cogsync.exceptions import ConfigError
from cogsync.server.backup import backup_data_dir
from cogsync.server.runner import EmbeddedServer


async def _device(server: EmbeddedServer, name: str, acked: list[tuple[str, str]]) -> None:
    """Push 10-record batches until cancelled; append (dataset, key) of each acknowledged one."""
    _, creds = await new_identity(server)
    async with http_client(server, creds) as http:
        batch = 0
        while True:
            dataset = f"{name}-{batch % 10}"  # within the per-identity dataset limit
            keys = {f"k{batch}-{i}": f"{name}-{batch}-{i}" for i in range(10)}
            await http.execute(push(dataset, f"{name}-r{batch}", keys))
            acked.extend((dataset, key) for key in keys)
            batch += 1


async def test_backup_while_devices_write_holds_every_acknowledged_batch(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    acked: list[tuple[str, str]] = []
    devices = [asyncio.create_task(_device(server, f"d{n}", acked)) for n in range(2)]
    try:
        while len(acked) < 100:
            await asyncio.sleep(0.05)
        before = list(acked)
        out = tmp_path / "backup"
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "cogsync", "backup", "--data", str(server.data_dir), str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        for device in devices:  # they wrote on throughout
            assert not device.done(), device.exception()
    finally:
        for device in devices:
            device.cancel()
        await asyncio.gather(*devices, return_exceptions=True)
    db = sqlite3.connect(out / "sync.db")
    rows = set(db.execute("SELECT dataset, key FROM records").fetchall())
    db.close()
    assert set(before) <= rows
    async with EmbeddedServer(out) as restored:  # the copy opens as a data directory
        assert restored.config.identity_pool_id == server.config.identity_pool_id
        assert restored.identity_db.identity_count() == 2


def test_backup_refuses_an_existing_target_and_a_non_data_dir(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(ConfigError, match=r"no sync\.db"):
        backup_data_dir(tmp_path / "nothing", tmp_path / "new")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sync.db").touch()
    with pytest.raises(ConfigError, match="exists"):
        backup_data_dir(tmp_path / "data", tmp_path / "out")
