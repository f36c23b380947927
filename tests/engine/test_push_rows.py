"""A push waits on the network holding rows, not objects: `PatchRows`, `LocalRecords`
and `Acknowledgements` are sequences and mappings of the same values, made on demand."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from typing import Any

import orjson

from cogsync.engine.commands import (
    ApplySync,
    LocalSnapshot,
    NewRequestId,
    PushRecords,
    ReadLocal,
)
from cogsync.engine.flow import sync_dataset
from cogsync.models import (
    Acknowledgements,
    DatasetState,
    LocalRecords,
    PatchOp,
    PatchRows,
    PushResult,
    Record,
    RecordPatch,
    RecordWrite,
    patch_rows,
)
from cogsync.remote.payloads import PushPatches

T = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
PATCHES = (
    RecordPatch(PatchOp.REPLACE, "a", "1", 2, T),
    RecordPatch(PatchOp.REMOVE, "b", None, 0),
    RecordPatch(PatchOp.REPLACE, "ü", "é" * 5, 7),
)


def test_patch_rows_are_the_same_patches() -> None:
    rows = PatchRows(patch_rows(PATCHES))
    assert rows == PATCHES and list(rows) == list(PATCHES) and rows[1:] == PATCHES[1:]
    assert all(type(p.op) is PatchOp for p in rows)
    assert [row[0] for row in rows.rows] == ["REPLACE", "REMOVE", "REPLACE"]
    assert all(type(row[0]) is str for row in rows.rows)  # not the enum: tracked
    assert patch_rows(rows) is rows.rows
    gc.collect()
    assert not any(gc.is_tracked(row) for row in rows.rows)


def test_a_push_encodes_rows_and_patches_alike() -> None:
    rows = PatchRows(patch_rows(PATCHES))
    for default in (PushPatches.fragment, PushPatches.dicts):
        assert orjson.dumps(PushPatches(rows), default=default) == orjson.dumps(
            PushPatches(PATCHES), default=default
        )
    assert orjson.loads(orjson.dumps(PushPatches(rows), default=PushPatches.fragment))[1] == {
        "op": "REMOVE",
        "key": "b",
        "value": None,
        "syncCount": 0,
        "deviceLastModifiedDate": None,
    }


def test_local_records_are_a_mapping_of_the_same_records() -> None:
    records = [
        Record("b", "2", 3, T, "me", T, dirty=True, revision=4),
        Record("a", None, 1, dirty=True, revision=2),
        Record("c", "3", 5, revision=1),
    ]
    local = LocalRecords(records)
    assert local == {r.key: r for r in records} and len(local) == 3 and "a" in local
    assert local["b"] == records[0] and list(local) == ["b", "a", "c"] and "x" not in local
    assert local.dirty() == (
        [("a", None, 1, None, None, None), ("b", "2", 3, T, "me", T)],
        {"a": 2, "b": 4},
    )
    assert "LocalRecords(" in repr(local)
    gc.collect()
    assert not any(gc.is_tracked(row) for row in local.rows.values())


def test_acknowledgements_are_writes_keeping_the_sync_count_on_mismatch() -> None:
    acks = Acknowledgements([("a", "1", 9, T, "dev", T, 4)])
    assert list(acks) == [
        RecordWrite(Record("a", "1", 9, T, "dev", T), 4, keep_sync_count_on_mismatch=True)
    ]


def _answer(flow: Any, kind: type[Any], value: Any) -> Any:
    command = flow.send(value)
    assert isinstance(command, kind), command
    return command


def test_a_push_sends_rows_and_acknowledges_a_record_the_answer_left_out() -> None:
    flow = sync_dataset("ds", device_id="dev-1", clock=lambda: T, unknown_to_server=True)
    assert isinstance(next(flow), ReadLocal)
    dirty = {
        "a": Record("a", "1", 0, None, "dev-1", T, dirty=True, revision=3),
        "b": Record("b", "2", 0, None, "dev-1", T, dirty=True, revision=5),
    }
    state = DatasetState("ds", last_sync_count=0)
    snapshot = LocalSnapshot(state, dirty, complete=False)
    assert isinstance(flow.send(snapshot), NewRequestId)
    push = _answer(flow, PushRecords, "req-1")
    assert isinstance(push.patches, PatchRows)
    assert push.patches == [
        RecordPatch(PatchOp.REPLACE, "a", "1", 0, T),
        RecordPatch(PatchOp.REPLACE, "b", "2", 0, T),
    ]
    server_a = Record("a", "1", 1, T, "dev-1", T)
    apply = _answer(flow, ApplySync, PushResult("ds", 1, (server_a,)))
    assert isinstance(apply.writes, Acknowledgements)
    assert list(apply.writes) == [
        RecordWrite(server_a, 3, keep_sync_count_on_mismatch=True),
        RecordWrite(Record("b", "2", 1, None, "dev-1", T), 5, keep_sync_count_on_mismatch=True),
    ]
