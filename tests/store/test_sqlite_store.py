"""SQLiteStore specifics: schema upgrades, opening bad files, file settings, worker threads."""

from __future__ import annotations

import shutil
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlite_utils

from cogsync.exceptions import ConfigError
from cogsync.models import Record, RecordWrite
from cogsync.store.migrations import MIGRATIONS, applied_migrations, migrate
from cogsync.store.sqlite import SQLiteStore
from cogsync.testing.store_contract import T0

FIXTURE = Path(__file__).parents[1] / "fixtures" / "store_v1.db"
FIXTURE_OWNER = "us-east-1:00000000-0000-0000-0000-00000000f1f1"


def columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def test_fixture_holds_only_the_first_migration() -> None:
    db = sqlite_utils.Database(sqlite3.connect(f"file:{FIXTURE}?mode=ro", uri=True))
    assert applied_migrations(db) == ["m001_initial"]
    assert "revision" not in columns(FIXTURE, "records")
    db.close()


def test_old_store_upgrades_with_dirty_records_intact(tmp_path: Path) -> None:
    path = tmp_path / "device.db"
    shutil.copy(FIXTURE, path)
    store = SQLiteStore(path)
    assert (store.device_id(), store.identity_id()) == ("fixture-device", FIXTURE_OWNER)
    live = ("theme", "dark", "lang", "en", "émoji-😀", "€uro")
    assert store.size_in_bytes(FIXTURE_OWNER, "settings") == len("".join(live).encode())
    dirty = store.dirty_records(FIXTURE_OWNER, "settings")
    assert [(r.key, r.value, r.sync_count, r.revision) for r in dirty] == [
        ("old", None, 2, 1),
        ("theme", "dark", 0, 1),
        ("émoji-😀", "€uro", 3, 1),
    ]
    # m003_sync_base: only the never-synced edit has a known base (it started from nothing).
    assert store.get_bases(FIXTURE_OWNER, "settings") == {"theme": None}
    lang = store.get_record(FIXTURE_OWNER, "settings", "lang")
    assert lang is not None and (lang.value, lang.dirty, lang.last_modified_by) == (
        "en", False, "other-device",
    )  # fmt: skip
    assert lang.last_modified_date == T0.replace(month=3, day=1, hour=10, microsecond=0)
    state = store.get_dataset(FIXTURE_OWNER, "settings")
    assert state is not None and state.last_sync_count == 3
    # Migrated records are at revision 1, so a guard written for an absent record skips them.
    assert store.apply_sync(FIXTURE_OWNER, "settings", [RecordWrite(Record("theme", "x"), 0)]) == [
        "theme"
    ]
    store.attach_identity(FIXTURE_OWNER)
    draft = store.get_record(FIXTURE_OWNER, "notes", "draft")
    assert draft is not None and (draft.value, draft.dirty) == ("offline text", True)
    store.close()
    db = sqlite_utils.Database(path)
    assert applied_migrations(db) == [m.__name__ for m in MIGRATIONS]
    totals = db.execute("SELECT record_count, size_bytes FROM datasets WHERE name = 'settings'")
    assert totals.fetchone() == (3, len("themedarklangenémoji-😀€uro".encode()))
    db.close()


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "device.db"
    SQLiteStore(path).close()
    db = sqlite_utils.Database(path)
    assert migrate(db) == []
    assert len(applied_migrations(db)) == len(MIGRATIONS)
    db.close()


def test_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "device.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO _migrations VALUES ('m999_future', '2030-01-01')")
    conn.close()
    with pytest.raises(ConfigError, match="newer cogsync"):
        SQLiteStore(path)


def test_non_database_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database " * 100)
    with pytest.raises(ConfigError, match="cannot open") as info:
        SQLiteStore(path)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_file_settings(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "device.db", device_id="given-id")
    conn = store._db.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000
    assert store.device_id() == "given-id"
    store.close()
    reopened = SQLiteStore(tmp_path / "device.db", device_id="ignored")
    assert reopened.device_id() == "given-id"
    reopened.close()


def test_usable_from_worker_threads(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "device.db")
    owner = store.provisional_owner()
    with ThreadPoolExecutor(max_workers=1) as worker:
        worker.submit(store.write_local, owner, "d", {"from": "worker"}, T0).result()
        assert worker.submit(store.get_records, owner, "d").result()["from"].value == "worker"
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(store.write_local, owner, f"t{i % 4}", {f"k{i}": str(i)}, T0)
            for i in range(200)
        ]
        for future in futures:
            future.result()
    assert sum(len(store.get_records(owner, f"t{i}")) for i in range(4)) == 200
    store.close()


def test_file_from_before_the_base_column_keeps_its_edits(tmp_path: Path) -> None:
    path = tmp_path / "device.db"
    db = sqlite_utils.Database(path)
    migrate(db, upto="m002_revisions_and_totals")
    db.execute("INSERT INTO meta (key, value) VALUES ('device_id', 'dev')")
    db.execute("INSERT INTO datasets (owner, name, last_sync_count) VALUES ('o', 'd', 4)")
    rows = [("synced", "s", 4, 0), ("edited", "e", 4, 1), ("new", "n", 0, 1)]
    for key, value, count, dirty in rows:
        db.execute(
            "INSERT INTO records (owner, dataset, key, value, sync_count, dirty, revision) "
            "VALUES ('o', 'd', ?, ?, ?, ?, 1)",
            (key, value, count, dirty),
        )
    db.conn.commit()
    db.close()
    store = SQLiteStore(path)
    assert [(r.key, r.value, r.sync_count) for r in store.dirty_records("o", "d")] == [
        ("edited", "e", 4),
        ("new", "n", 0),
    ]
    assert store.get_bases("o", "d") == {"new": None}
    store.write_local("o", "d", {"synced": "s2", "edited": "e2"}, T0)
    assert store.get_bases("o", "d") == {"new": None, "synced": "s"}
    store.close()


def test_record_states_are_the_records_fields(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "d.db")
    store.write_local("o", "ds", {"a": "1", "b": "2", "gone": "x"}, T0)
    writes = [
        RecordWrite(Record(k, v, 3), expected_revision=1) for k, v in (("b", "2"), ("c", "3"))
    ]
    store.apply_sync("o", "ds", writes, last_sync_count=3)
    store.write_local("o", "ds", {"a": "edited", "gone": None}, T0)
    records = store.get_records("o", "ds")
    assert store.record_states("o", "ds") == {
        k: (r.value, r.sync_count, int(r.dirty)) for k, r in records.items()
    }
    assert store.record_states("o", "ds", ["a", "c", "never"]) == {
        k: (r.value, r.sync_count, int(r.dirty)) for k, r in records.items() if k in "ac"
    }
    many = [f"k{i}" for i in range(100)] + ["b"]  # more keys than are bound one by one
    b = records["b"]
    assert store.record_states("o", "ds", many) == {"b": (b.value, b.sync_count, int(b.dirty))}
    assert store.get_records("o", "ds", many) == {"b": records["b"]}
    assert store.record_states("o", "other") == {}
