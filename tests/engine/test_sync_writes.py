"""`SyncWrites`: a sequence of sync writes whose pulled records become writes on demand."""

from __future__ import annotations

import pytest

from cogsync.engine.flow import plan_pull
from cogsync.models import Record, RecordWrite, SyncWrites

OURS = (RecordWrite(Record("a", "1", 2), 5), RecordWrite(Record("b", None, 3), None))
PULLED = (Record("c", "3", 4), Record("d", None, 6))
ALL = (*OURS, RecordWrite(PULLED[0], 0), RecordWrite(PULLED[1], 0))


def test_is_the_writes_then_each_pulled_record_expecting_revision_0() -> None:
    writes = SyncWrites(OURS, PULLED)
    assert len(writes) == 4 and bool(writes) and not SyncWrites()
    assert tuple(writes) == ALL and list(writes) == list(ALL)
    assert [writes[i] for i in range(-4, 4)] == [*ALL, *ALL]
    assert writes[1:3] == ALL[1:3] and writes[::-1] == ALL[::-1]
    with pytest.raises(IndexError):
        writes[4]
    with pytest.raises(IndexError):
        writes[-5]


def test_equals_any_sequence_of_the_same_writes() -> None:
    writes = SyncWrites(OURS, PULLED)
    assert writes == ALL and writes == list(ALL) and writes == SyncWrites(ALL)
    assert writes != ALL[:3] and writes != (*ALL[:3], RecordWrite(PULLED[1], 1))
    assert writes != "abcd" and SyncWrites() == ()
    assert hash(writes) == hash(SyncWrites(ALL)) == hash(ALL)
    assert "pulled=" in repr(writes)


def test_parts_splits_only_sync_writes() -> None:
    writes = SyncWrites(OURS, PULLED)
    assert SyncWrites.parts(writes) == (OURS, PULLED)
    assert SyncWrites.parts(ALL) == (ALL, ())


def test_plan_pull_gives_new_keys_as_pulled_records_without_writes() -> None:
    local = {"a": Record("a", "old", 1, revision=7)}
    remote = [Record("a", "new", 2), Record("n", "x", 3), Record("t", None, 4)]
    plan = plan_pull(local, remote)
    assert plan.pulled == remote[1:] and plan.writes == [RecordWrite(remote[0], 7)]
    assert plan.sync_writes() == [
        RecordWrite(remote[0], 7),
        *(RecordWrite(r, 0) for r in remote[1:]),
    ]
