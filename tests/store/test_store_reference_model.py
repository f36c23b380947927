"""Random operation sequences give the same results and state on SQLiteStore and MemoryStore."""

from __future__ import annotations

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
