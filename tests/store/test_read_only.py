"""`SQLiteStore(read_only=True)`: reads a device file without changing any file."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cogsync.exceptions import ConfigError, UsageError
from cogsync.store.migrations import m001_initial, migrate
from cogsync.store.sqlite import SQLiteStore

OWNER = "us-east-1:00000000-0000-0000-0000-000000000001"
NOW = datetime(2024, 1, 2, tzinfo=UTC)


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def device_file(path: Path) -> Path:
    store = SQLiteStore(path)
    store.attach_identity(OWNER)
    store.write_local(OWNER, "prefs", {"theme": "dark", "lang": "fr"}, now=NOW)
    store.close()
    return path


def test_reads_a_closed_device_file_and_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    path = device_file(tmp_path / "device.db")
    before = digest(tmp_path)
    store = SQLiteStore(path, read_only=True)
    assert store.identity_id() == OWNER
    assert {k: r.value for k, r in store.get_records(OWNER, "prefs").items()} == {
        "lang": "fr",
        "theme": "dark",
    }
    store.close()
    assert digest(tmp_path) == before


def test_sees_the_writes_of_a_process_that_has_the_file_open(tmp_path: Path) -> None:
    path = device_file(tmp_path / "device.db")
    writer = SQLiteStore(path)
    reader = SQLiteStore(path, read_only=True)
    writer.write_local(OWNER, "prefs", {"new": "1"}, now=NOW)
    assert "new" in reader.get_records(OWNER, "prefs")
    reader.close()
    writer.close()


def test_refuses_every_write(tmp_path: Path) -> None:
    path = device_file(tmp_path / "device.db")
    before = digest(tmp_path)
    store = SQLiteStore(path, read_only=True)
    with pytest.raises(UsageError, match="read-only"):
        store.write_local(OWNER, "prefs", {"theme": "light"}, now=NOW)
    with pytest.raises(UsageError, match="read-only"):
        store.set_identity_id(None)
    store.close()
    assert digest(tmp_path) == before


def test_an_apps_own_sqlite_file_is_named_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    before = digest(tmp_path)
    with pytest.raises(ConfigError, match="not a cogsync device file"):
        SQLiteStore(path, read_only=True)
    assert digest(tmp_path) == before


@pytest.mark.parametrize("content", [b"", os.urandom(4096), b"SQLite format 3\x00" + bytes(200)])
def test_a_damaged_or_foreign_file_is_one_config_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "device.db"
    path.write_bytes(content)
    before = digest(tmp_path)
    with pytest.raises(ConfigError):
        SQLiteStore(path, read_only=True)
    assert digest(tmp_path) == before


def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no device file"):
        SQLiteStore(tmp_path / "missing.db", read_only=True)
    assert not list(tmp_path.iterdir())


def test_an_old_version_file_is_not_upgraded(tmp_path: Path) -> None:
    import sqlite_utils

    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    migrate(db, upto=m001_initial.__name__)
    db.close()
    before = digest(tmp_path)
    with pytest.raises(ConfigError, match="older cogsync"):
        SQLiteStore(path, read_only=True)
    assert digest(tmp_path) == before
