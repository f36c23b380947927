"""Local store speed against raw sqlite3 with the same file settings, measured in one run.

Run: ``python benchmarks/local_store.py [--puts N] [--rounds N] [--dir DIR]``. Prints one
table: single put via `SQLiteStore.write_local` vs ``INSERT OR REPLACE`` + commit, and a
1,000-record put_all in one ``write_local`` vs ``executemany`` in one transaction. Both
sides use WAL and synchronous=FULL on the same disk and run in alternating chunks, so the
ratio shows the store's own overhead. Goals: put <= 1.5x raw, put_all <= 2x raw.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cogsync.models import utcnow
from cogsync.store.sqlite import SQLiteStore

OWNER = "eu-west-1:bench"
VALUE = '{"score": 1234, "name": "benchmark"}'
BATCH = 1000


def raw_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT)")
    return conn


def interleaved(
    ours: Callable[[int], None], raw: Callable[[int], None], count: int
) -> tuple[float, float]:
    """Operations per second of each side, run in alternating chunks so load swings hit both."""
    spent = [0.0, 0.0]
    chunk = max(1, count // 20)
    for first in range(0, count, chunk):
        for side, run in enumerate((ours, raw)):
            start = time.perf_counter()
            for i in range(first, min(first + chunk, count)):
                run(i)
            spent[side] += time.perf_counter() - start
    return count / spent[0], count / spent[1]


def bench(directory: Path, count: int, batch: int) -> tuple[float, float]:
    """Store vs raw ops/s for ``count`` calls each writing ``batch`` records in one transaction."""
    store = SQLiteStore(directory / f"store-{batch}.db")
    conn = raw_connection(directory / f"raw-{batch}.db")

    def keys(i: int) -> list[str]:
        return [f"key{i % 500}"] if batch == 1 else [f"key{k}" for k in range(batch)]

    def store_write(i: int) -> None:
        store.write_local(OWNER, "bench", {key: f"{VALUE}{i}" for key in keys(i)}, utcnow())

    def raw_write(i: int) -> None:
        rows = [(key, f"{VALUE}{i}") for key in keys(i)]
        conn.execute("BEGIN")
        if batch == 1:
            conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", rows[0])
        else:
            conn.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", rows)
        conn.execute("COMMIT")

    try:
        return interleaved(store_write, raw_write, count)
    finally:
        store.close()
        conn.close()


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puts", type=int, default=2000, help="single puts per trial")
    parser.add_argument("--rounds", type=int, default=40, help="put_all calls per trial")
    parser.add_argument("--trials", type=int, default=3, help="trials (median is shown)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files")
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"put": [], "put_all": []}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for trial in range(args.trials):
            directory = Path(tmp) / str(trial)
            directory.mkdir()
            results["put"].append(bench(directory, args.puts, 1))
            results["put_all"].append(bench(directory, args.rounds, BATCH))
    goals = {"put": 1.5, "put_all": 2.0}
    units = {"put": "puts/s", "put_all": f"calls/s ({BATCH} records)"}
    print(
        f"{'operation':<10} {'SQLiteStore':>12} {'raw sqlite3':>12} {'ratio':>7} {'goal':>6}  unit"
    )
    for name, trials in results.items():
        ours = statistics.median(t[0] for t in trials)
        raw = statistics.median(t[1] for t in trials)
        ratio = raw / ours
        verdict = "ok" if ratio <= goals[name] else "MISSED"
        print(
            f"{name:<10} {ours:>12,.0f} {raw:>12,.0f} {ratio:>6.2f}x {goals[name]:>5}x  "
            f"{units[name]}  {verdict}"
        )


if __name__ == "__main__":
    main()
