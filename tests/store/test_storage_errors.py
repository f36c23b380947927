"""Run-time SQLite failures reach callers as typed cogsync errors, never raw sqlite3 ones."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cogsync.exceptions import (
    CogsyncError,
    ConfigError,
    StorageCorruptError,
    StorageError,
    StorageFullError,
)
from cogsync.store.sqlite import SQLiteStore

OWNER = "us-east-1:00000000-0000-0000-0000-000000000002"
NOW = datetime(2024, 1, 2, tzinfo=UTC)


def test_a_full_disk_is_retryable_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "device.db")
    store.attach_identity(OWNER)
    store.write_local(OWNER, "prefs", {"kept": "1"}, now=NOW)
    # A real SQLITE_FULL: the database may not grow past its current size.
    (pages,) = store._conn.execute("PRAGMA page_count").fetchone()
    store._conn.execute(f"PRAGMA max_page_count = {pages}")
    big = {f"key{i}": "x" * 900 for i in range(200)}
    with pytest.raises(StorageFullError) as caught:
        store.write_local(OWNER, "prefs", big, now=NOW)
    error = caught.value
    assert isinstance(error, StorageError) and isinstance(error, CogsyncError)
    assert error.retryable
    assert error.path == str(tmp_path / "device.db")
    assert "full" in str(error) and "retry" in str(error)
    assert isinstance(error.__cause__, sqlite3.OperationalError)
    assert set(store.get_records(OWNER, "prefs")) == {"kept"}
    # Space freed: the same call now succeeds.
    store._conn.execute("PRAGMA max_page_count = 1073741823")
    store.write_local(OWNER, "prefs", big, now=NOW)
    assert len(store.get_records(OWNER, "prefs")) == 201
    store.close()


def damage(path: Path) -> None:
    """Overwrite every page but the first (the header and schema stay readable)."""
    page_size = 4096
    with path.open("r+b") as file:
        for offset in range(page_size, path.stat().st_size, page_size):
            file.seek(offset)
            file.write(b"\xa5" * page_size)


def test_a_damaged_page_names_the_file_and_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "device.db"
    store = SQLiteStore(path)
    store.attach_identity(OWNER)
    store.write_local(OWNER, "prefs", {f"k{i}": "v" * 500 for i in range(400)}, now=NOW)
    store.close()
    store = SQLiteStore(path)
    damage(path)  # behind the open store's back, as a failing disk would
    with pytest.raises(StorageCorruptError) as caught:
        store.get_records(OWNER, "prefs")
    assert str(path) in str(caught.value)
    assert "cogsync inspect" in str(caught.value)
    assert not caught.value.retryable
    with pytest.raises(StorageError):
        store.write_local(OWNER, "prefs", {"k1": "new"}, now=NOW)
    store.close()


def test_a_file_damaged_before_opening_is_one_config_error(tmp_path: Path) -> None:
    path = tmp_path / "device.db"
    store = SQLiteStore(path)
    store.attach_identity(OWNER)
    store.close()
    damage(path)
    with pytest.raises(ConfigError, match="cannot open"):
        SQLiteStore(path)
