"""`insert_many` and `execute_among` write what ``executemany`` would, in fewer steps."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from cogsync.sqlite_many import execute_among, insert_many

UPSERT = (
    "INSERT INTO t (k, v, n, flag) VALUES (?, ?, ?, 1) "
    "ON CONFLICT (k) DO UPDATE SET v = excluded.v, n = t.n + excluded.n"
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT, n INT, flag INT, sent INT DEFAULT 0)")
    yield conn
    conn.close()


def _table(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return conn.execute("SELECT * FROM t ORDER BY k").fetchall()


def _rows(count: int) -> list[tuple[str, str, int]]:
    # Every third key repeats an earlier one: later rows must see earlier ones.
    return [(f"k{i % max(1, count - count // 3)}", f"v{i}\0é", i) for i in range(count)]


@pytest.mark.parametrize("count", [0, 1, 3, 255, 256, 257, 700, 1025])
def test_insert_many_writes_what_executemany_writes(db: sqlite3.Connection, count: int) -> None:
    rows = _rows(count)
    insert_many(db, UPSERT, iter(rows))  # any iterable, consumed once
    expected = _table(db)
    db.execute("DELETE FROM t")
    db.executemany(UPSERT, rows)
    assert expected == _table(db)
    assert all("\0" in str(row[1]) for row in expected)  # NUL characters kept


def test_insert_many_fits_a_low_variable_limit(db: sqlite3.Connection) -> None:
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)  # 3 rows of 3 per step
    insert_many(db, UPSERT, _rows(50))
    got = _table(db)
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766)
    db.execute("DELETE FROM t")
    db.executemany(UPSERT, _rows(50))
    assert got == _table(db)


def test_insert_many_wants_one_values_row(db: sqlite3.Connection) -> None:
    with pytest.raises(ValueError, match="VALUES"):
        insert_many(db, "INSERT INTO t SELECT * FROM t", [()])


@pytest.mark.parametrize("limit", [32766, 20])
def test_execute_among_reaches_every_key_once(db: sqlite3.Connection, limit: int) -> None:
    db.executemany("INSERT INTO t (k, v, n) VALUES (?, 'x', 0)", [(f"k{i}",) for i in range(1500)])
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    wanted = [f"k{i}" for i in range(0, 1500, 2)] + ["absent", "k\0"]
    execute_among(db, "UPDATE t SET sent = sent + 1 WHERE v = ? AND k IN ({marks})", ("x",), wanted)
    sent = dict(db.execute("SELECT k, sent FROM t").fetchall())
    assert sent == {f"k{i}": int(i % 2 == 0) for i in range(1500)}
    execute_among(db, "UPDATE t SET sent = 9 WHERE v = ? AND k IN ({marks})", ("x",), [])
    assert db.execute("SELECT count(*) FROM t WHERE sent = 9").fetchone() == (0,)
