"""Random operation sequences give the same results and state on SQLiteStore and MemoryStore."""

from __future__ import annotations

import random
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cogsync.exceptions import CogsyncError
from cogsync.limits import Limits
from cogsync.models import Record, RecordWrite
from cogsync.store.base import LocalStore
from cogsync.store.memory import MemoryStore
from cogsync.store.sqlite import SQLiteStore
from cogsync.testing.store_contract import T0, snapshot

# Small limits so random sequences reach every boundary.
LIMITS = Limits(max_datasets=2, max_records=3, max_dataset_bytes=24, max_key_bytes=8)
OWNERS = ["eu-west-1:a", "eu-west-1:b", "guest"]  # "guest" stands for the provisional owner
names = st.sampled_from(["a", "b", "c", "bad name"])
owners = st.sampled_from(OWNERS)
keys = st.sampled_from(["k", "é", "€€", "😀", "x" * 9])
values = st.none() | st.sampled_from(["", "v", "é€😀", "long" * 5])
moments = st.none() | st.integers(0, 100).map(lambda s: T0 + timedelta(seconds=s))
records = st.builds(
    Record,
    key=keys,
    value=values,
    sync_count=st.integers(0, 5),
    last_modified_date=moments,
    last_modified_by=st.sampled_from([None, "device-x"]),
    device_last_modified_date=moments,
    dirty=st.booleans(),
)
writes = st.builds(
    RecordWrite,
    record=records,
    expected_revision=st.none() | st.integers(0, 3),
    keep_sync_count_on_mismatch=st.booleans(),
)
operations = st.one_of(
    st.tuples(st.just("write_local"), owners, names, st.dictionaries(keys, values, max_size=4)),
    st.tuples(st.just("create_dataset"), owners, names),
    st.tuples(st.just("mark_dataset_deleted"), owners, names),
    st.tuples(st.just("drop_dataset"), owners, names),
    st.tuples(
        st.just("apply_sync"),
        owners,
        names,
        st.lists(writes, max_size=4),
        st.none() | st.integers(0, 9),
        st.booleans(),
        st.booleans(),
    ),
    st.tuples(st.just("rename_dataset"), owners, names, owners, names),
    st.tuples(st.just("get_records"), owners, names, st.frozensets(keys, max_size=3)),
    st.tuples(st.just("dirty_records"), owners, names),
    st.tuples(st.just("attach_identity"), st.sampled_from(OWNERS[:2])),
    st.tuples(st.just("set_identity_id"), st.none() | st.sampled_from(OWNERS[:2])),
    st.tuples(st.just("wipe")),
)


def run(store: LocalStore, step: int, op: tuple[Any, ...]) -> object:
    """Apply ``op`` to ``store``; return its result or the error it raised."""
    name, *args = op
    args = [store.provisional_owner() if a == "guest" else a for a in args]
    try:
        if name == "write_local":
            return store.write_local(*args, now=T0 + timedelta(seconds=step))
        if name == "get_records":
            owner, ds, among = args
            return store.get_records(owner, ds, keys=among)
        if name == "apply_sync":
            owner, ds, ws, count, clear, reset = args
            return store.apply_sync(
                owner, ds, ws, last_sync_count=count, clear_deleted_pending=clear,
                reset_sync_counts=reset,
            )  # fmt: skip
        return getattr(store, name)(*args)
    except CogsyncError as exc:
        return (type(exc).__name__, str(exc))


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.lists(operations, max_size=25))
def test_sqlite_store_matches_memory_store(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        sqlite = SQLiteStore(Path(directory) / "device.db", limits=LIMITS, device_id="dev-1")
        memory = MemoryStore(limits=LIMITS, device_id="dev-1")
        every_owner = [*OWNERS[:2], memory.provisional_owner()]
        try:
            for step, op in enumerate(ops):
                assert run(sqlite, step, op) == run(memory, step, op), op
                assert snapshot(sqlite, every_owner) == snapshot(memory, every_owner), op
            sqlite.close()
            sqlite = SQLiteStore(Path(directory) / "device.db", limits=LIMITS)
            assert snapshot(sqlite, every_owner) == snapshot(memory, every_owner)
        finally:
            sqlite.close()


def test_a_large_sync_step_leaves_both_stores_alike() -> None:
    """One apply_sync of 1,200 writes (one executemany; guards met, missed, and keys
    written twice) and reads among many keys give the same results on both stores."""
    rng = random.Random(13)
    with tempfile.TemporaryDirectory() as directory:
        sqlite = SQLiteStore(Path(directory) / "device.db", device_id="dev-1")
        memory = MemoryStore(device_id="dev-1")
        try:
            for store in (sqlite, memory):
                store.write_local("o", "ds", {f"k{i:04d}": f"local {i}" for i in range(300)}, T0)
            batch = []
            for i in range(1200):
                key = f"k{rng.randrange(1000):04d}"
                at = T0 + timedelta(seconds=rng.randrange(50))
                value = None if rng.random() < 0.1 else f"remote {i} é😀"
                record = Record(
                    key, value, rng.randrange(1, 9), at, "dev-2", at, rng.random() < 0.2
                )
                guard = rng.choice([None, 0, 1, 2])
                batch.append(RecordWrite(record, guard, rng.random() < 0.3, base="b"))
            results = [s.apply_sync("o", "ds", batch, last_sync_count=8) for s in (sqlite, memory)]
            assert results[0] == results[1] and results[0]  # some guards were missed
            assert snapshot(sqlite, ["o"]) == snapshot(memory, ["o"])
            among = {f"k{i:04d}" for i in range(0, 1100, 7)} | {"absent"}
            for keys in (among, set(list(among)[:5]), set()):
                got = sqlite.get_records("o", "ds", keys=keys)
                assert got == memory.get_records("o", "ds", keys=keys)
                assert got == {k: r for k, r in sqlite.get_records("o", "ds").items() if k in keys}
            assert sqlite.dirty_records("o", "ds") == memory.dirty_records("o", "ds")
        finally:
            sqlite.close()
