"""The Dataset API on Client and AsyncClient with no server: local reads/writes and limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import cogsync
from cogsync import AsyncClient, Client


def test_offline_crud_blocking(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    with Client(db_path=db) as client:
        ds = client.open_or_create_dataset("prefs")
        ds.put("a", "1")
        ds.put_all({"b": "2", "c": "ü€"})
        ds.remove("a")
        assert ds.get("a") is None
        assert ds.get_all() == {"b": "2", "c": "ü€"}
        assert ds.size_in_bytes() == len("b2") + len("cü€".encode())
        rec = ds.record("b")
        assert rec is not None and rec.dirty and rec.sync_count == 0
        [meta] = client.list_datasets()
        assert (meta.name, meta.record_count) == ("prefs", 2)
    with Client(db_path=db) as client:
        assert client.dataset("prefs").get_all() == {"b": "2", "c": "ü€"}


def test_errors_are_typed(tmp_path: Path) -> None:
    with Client(db_path=tmp_path / "d.db") as client:
        with pytest.raises(cogsync.InvalidNameError):
            client.dataset("bad name!")
        ds = client.dataset("ok")
        with pytest.raises(cogsync.InvalidValueError):
            ds.put("k", 5)  # type: ignore[arg-type]
        with pytest.raises(cogsync.InvalidKeyError):
            ds.put("é" * 65, "v")  # 130 bytes
        ds.put("é" * 64, "v")  # exactly 128 bytes
        with pytest.raises(cogsync.InvalidValueError):
            ds.put_all({"k": "v", "k2": None})  # type: ignore[dict-item]
        assert ds.get("k") is None  # nothing of the failed batch written


def test_dataset_limit_via_client(tmp_path: Path) -> None:
    with Client(db_path=tmp_path / "d.db") as client:
        for i in range(20):
            client.dataset(f"d{i}")
        with pytest.raises(cogsync.DatasetLimitExceededError):
            client.dataset("d20")
        client.dataset("d0").delete()
        client.dataset("d20")


def test_size_limit_via_client(tmp_path: Path) -> None:
    with Client(db_path=tmp_path / "d.db") as client:
        ds = client.dataset("big")
        ds.put("k", "x" * (1_048_576 - 1))
        with pytest.raises(cogsync.DatasetSizeLimitExceededError):
            ds.put("k2", "y")
        assert ds.size_in_bytes() == 1_048_576
        ds.put("k", "z" * (1_048_576 - 1))  # replacing counts the difference


def test_blocking_client_refuses_inside_event_loop(tmp_path: Path) -> None:
    client = Client(db_path=tmp_path / "d.db")
    try:

        async def inside() -> None:
            with pytest.raises(cogsync.UsageError):
                client.dataset("x")

        asyncio.run(inside())
    finally:
        client.close()


async def test_async_client_local(tmp_path: Path) -> None:
    async with AsyncClient(db_path=tmp_path / "d.db") as client:
        ds = await client.dataset("prefs")
        await ds.put("k", "v")
        assert await ds.get("k") == "v"
        assert await ds.get_all() == {"k": "v"}
        assert client.identity_id is None  # never contacted a server
        await ds.delete()
        assert await client.list_datasets() == []


def test_identity_id_given_attaches_provisional_data(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    with Client(db_path=db) as client:
        client.dataset("notes").put("n1", "offline note")
    with Client(db_path=db, identity_id="us-east-1:abc") as client:
        assert client.async_client.identity_id == "us-east-1:abc"
        assert client.dataset("notes").get("n1") == "offline note"


def test_example_offline_first_runs(tmp_path: Path) -> None:
    import runpy

    mod = runpy.run_path(str(Path(__file__).parents[2] / "examples" / "offline_first.py"))
    mod["main"](tmp_path / "ex.db")
