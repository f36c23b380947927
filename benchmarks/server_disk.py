"""Server disk use after many rewrites of one dataset, against the live data it holds.

Run: ``python benchmarks/server_disk.py [--rewrites N] [--size BYTES] [--records N]
[--key-heavy-records N]``.
Rewrites one dataset (``--records`` records, ``--size`` bytes of keys and values, 1 MB by
default) through `ServerStorage.push_records`, the server's own write path, and prints one
row per checkpoint (1, 10, 100, ... up to ``--rewrites``, 1,000 by default): the data file
with its WAL while open, the file after close, their ratio to the live data, and the
replay-memo and change-log rows and the keys the log holds. The last column is what the
replay memo held before it was bounded (every push's full answer, values included, kept
forever), computed from the same answers, since the old code does not run in this process.
Then the same for a key-heavy shape (``--key-heavy-records`` records of the same 1 MB,
1,000 by default; 0 skips it), twice in the same run: with the default change-log bound
(``change_log_keys``) and with none (``change_log_keys=0``, the log before the bound).
Goal: the closed file stays within a small constant factor (<= 3x) of live data after any
number of rewrites.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
from pathlib import Path

from cogsync.models import PatchOp, RecordPatch
from cogsync.server.bounds import ServerLimits
from cogsync.server.rows import record_json
from cogsync.server.storage import DatasetChange, ServerStorage

IDENTITY = "us-east-1:bench"


def _old_memo_bytes(change: DatasetChange) -> int:
    """Bytes the unbounded memo stored for one push (its full answer, as JSON)."""
    result = {
        "dataset": change.dataset_name,
        "sync_count": change.sync_count,
        "deleted": change.deleted,
        "records": [record_json(r) for r in change.records],
    }
    return len(json.dumps(result, separators=(",", ":")))


def _rows(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as db:
        (requests,) = db.execute("SELECT COUNT(*) FROM requests").fetchone()
        (changes,) = db.execute("SELECT COUNT(*) FROM change_log").fetchone()
        (keys,) = db.execute("SELECT TOTAL(json_array_length(keys)) FROM change_log").fetchone()
    return int(requests), int(changes), int(keys)


def _checkpoints(last: int) -> list[int]:
    marks, n = [], 1
    while n < last:
        marks.append(n)
        n *= 10
    return [*marks, last]


def run(
    rewrites: int,
    size: int,
    records: int,
    folder: Path,
    retention: ServerLimits = ServerLimits(),  # noqa: B008 (frozen)
) -> None:
    path = folder / "sync.db"
    for old in folder.glob("sync.db*"):
        old.unlink()
    per_value = size // records - 4  # keys are "k000".."k999" style, 4 bytes
    live = records * (per_value + 4)
    counts: dict[str, int] = {}
    old_memo = 0
    marks = set(_checkpoints(rewrites))
    bound = (
        f"{retention.change_log_keys:,} keys per dataset" if retention.change_log_keys else "none"
    )
    print(
        f"\ndataset: {records} records, {live:,} bytes of keys and values (live data); "
        f"change-log bound: {bound}"
    )
    print(
        f"{'rewrites':>8} {'open db+wal':>12} {'closed db':>12} {'closed/live':>11} "
        f"{'memo rows':>9} {'log rows':>8} {'log keys':>9} {'old memo (computed)':>20}"
    )
    storage = ServerStorage(path, retention=retention)
    try:
        for n in range(1, rewrites + 1):
            letter = chr(ord("a") + n % 26)
            patches = [
                RecordPatch(
                    PatchOp.REPLACE, f"k{i:03}", letter * per_value, counts.get(f"k{i:03}", 0)
                )
                for i in range(records)
            ]
            change = storage.push_records(
                IDENTITY, "bench", patches, client_request_id=f"r-{n}", device_id="bench"
            )
            counts = {r.key: r.sync_count for r in change.records}
            old_memo += _old_memo_bytes(change)
            if n not in marks:
                continue
            open_bytes = sum(p.stat().st_size for p in folder.glob("sync.db*"))
            storage.close()
            closed = path.stat().st_size
            memo_rows, log_rows, log_keys = _rows(path)
            print(
                f"{n:>8,} {open_bytes:>12,} {closed:>12,} {closed / live:>10.2f}x "
                f"{memo_rows:>9,} {log_rows:>8,} {log_keys:>9,} {old_memo:>20,}",
                flush=True,
            )
            storage = ServerStorage(path, retention=retention)
    finally:
        storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rewrites", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1_000_000, help="bytes of the dataset")
    parser.add_argument("--records", type=int, default=16)
    parser.add_argument("--key-heavy-records", type=int, default=1000, help="0: skip")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.dir or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        run(args.rewrites, args.size, args.records, folder)
        if args.key_heavy_records:
            for retention in (ServerLimits(), ServerLimits(change_log_keys=0)):
                run(args.rewrites, args.size, args.key_heavy_records, folder, retention)


if __name__ == "__main__":
    main()
