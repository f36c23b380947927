"""The sync flow driven by hand, command by command, without an event loop."""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import UTC, datetime
from typing import Any

import pytest

from cogsync.engine.commands import (
    ApplySync,
    Command,
    DatasetDeleted,
    DatasetsMerged,
    DeleteRemote,
    DropDataset,
    ListRecords,
    LocalSnapshot,
    NewRequestId,
    PushRecords,
    ReadLocal,
    ResolveConflicts,
)
from cogsync.engine.conflicts import last_writer_wins, local_wins, remote_wins
from cogsync.engine.flow import plan_pull, sync_dataset
from cogsync.exceptions import ConflictError, OfflineError
from cogsync.models import (
    Conflict,
    DatasetState,
    PatchOp,
    PushResult,
    Record,
    RecordPage,
    RecordPatch,
    Resolution,
    SyncResult,
)

T1 = datetime(2026, 1, 1, 10, tzinfo=UTC)
T2 = datetime(2026, 1, 1, 11, tzinfo=UTC)
NOW = datetime(2026, 1, 2, tzinfo=UTC)


class Hand:
    """Drives a flow: check the command it yields, answer it, or throw an error into it."""

    def __init__(self, flow: Generator[Command[Any], Any, SyncResult]) -> None:
        self.flow = flow
        self.pending: Command[Any] | None = next(flow)
        self.result: SyncResult | None = None

    def expect(self, kind: type[Any]) -> Any:
        assert isinstance(self.pending, kind), f"expected {kind.__name__}, got {self.pending!r}"
        return self.pending

    def _advance(self, step: Callable[[], Command[Any]]) -> None:
        try:
            self.pending = step()
        except StopIteration as stop:
            self.pending, self.result = None, stop.value

    def answer(self, kind: type[Any], value: Any) -> Any:
        command = self.expect(kind)
        self._advance(lambda: self.flow.send(value))
        return command

    def fail(self, kind: type[Any], exc: Exception) -> Any:
        command = self.expect(kind)
        self._advance(lambda: self.flow.throw(exc))
        return command

    def done(self) -> SyncResult:
        assert self.pending is None, f"flow still yields {self.pending!r}"
        assert self.result is not None
        return self.result


def rec(
    key: str,
    value: str | None,
    count: int,
    *,
    dirty: bool = False,
    revision: int = 1,
    at: datetime | None = None,
    by: str | None = None,
) -> Record:
    return Record(key, value, count, at, by, at, dirty, revision)


def snap(last: int, *records: Record, pending: bool = False) -> LocalSnapshot:
    state = DatasetState("ds", last_sync_count=last, deleted_pending=pending)
    return LocalSnapshot(state, {r.key: r for r in records})


def page(
    up_to: int, *records: Record, token: str | None = None, deleted: bool = False
) -> RecordPage:
    return RecordPage("ds", up_to, deleted, records, token)


def flow(**kwargs: Any) -> Hand:
    return Hand(sync_dataset("ds", device_id="dev-1", clock=lambda: NOW, **kwargs))


def pushed(count: int, *records: Record) -> PushResult:
    return PushResult("ds", count, tuple(rec(r.key, r.value, count, revision=0) for r in records))


def push_and_ack(hand: Hand, local: LocalSnapshot, result_count: int) -> PushRecords:
    """Answer ReadLocal (dirty records), NewRequestId and a successful push; return the push."""
    hand.answer(ReadLocal, local)
    hand.answer(NewRequestId, "req-1")
    dirty = [r for r in local.records.values() if r.dirty]
    return hand.answer(PushRecords, pushed(result_count, *dirty))


# ---- pull ----------------------------------------------------------------------------------
def test_clean_pull_applies_remote_records_and_advances_last_sync_count() -> None:
    hand = flow()
    assert hand.answer(ReadLocal, snap(0)) == ReadLocal("ds", only=frozenset())
    assert hand.answer(ListRecords, page(3, rec("a", "1", 3), rec("b", None, 2))) == ListRecords(
        "ds", 0
    )
    apply = hand.answer(ApplySync, [])
    assert apply.last_sync_count == 3
    assert [(w.record.key, w.record.dirty, w.expected_revision) for w in apply.writes] == [
        ("a", False, 0),
        ("b", False, 0),
    ]
    hand.answer(ReadLocal, snap(3, rec("a", "1", 3)))
    assert hand.done() == SyncResult("ds", pulled=2, pushed=0, sync_count=3)


def test_nothing_new_and_nothing_dirty_writes_nothing() -> None:
    hand = flow()
    hand.answer(ReadLocal, snap(3, rec("a", "1", 3)))
    hand.answer(ListRecords, page(3))
    hand.answer(ReadLocal, snap(3, rec("a", "1", 3)))  # no ApplySync in between
    assert hand.done() == SyncResult("ds", sync_count=3)


def test_pull_follows_pages_and_keeps_the_first_pages_up_to_count() -> None:
    hand = flow()
    hand.answer(ReadLocal, snap(1))
    hand.answer(ListRecords, page(5, rec("a", "1", 2), token="t1"))
    assert hand.answer(ListRecords, page(6, rec("b", "2", 5))) == ListRecords("ds", 1, "t1")
    apply = hand.answer(ApplySync, [])
    assert [w.record.key for w in apply.writes] == ["a", "b"]
    assert apply.last_sync_count == 5
    hand.answer(ReadLocal, snap(5, rec("a", "1", 2), rec("b", "2", 5)))
    assert hand.done().pulled == 2


def test_remote_record_older_than_the_local_one_is_ignored() -> None:
    plan = plan_pull({"a": rec("a", "new", 7)}, [rec("a", "old", 4)])
    assert plan.writes == [] and plan.conflicts == []


def test_dirty_edit_on_top_of_the_same_server_version_is_not_a_conflict() -> None:
    local = {"a": rec("a", "edited", 4, dirty=True)}
    plan = plan_pull(local, [rec("a", "server", 4)])
    assert plan.writes == [] and plan.conflicts == []


def test_dirty_record_with_the_servers_value_adopts_its_count_without_conflict() -> None:
    hand = flow()
    hand.answer(ReadLocal, snap(1, rec("a", "same", 1, dirty=True, revision=4)))
    hand.answer(ListRecords, page(6, rec("a", "same", 6)))  # no ResolveConflicts
    apply = hand.answer(ApplySync, [])
    (write,) = apply.writes
    assert (write.record.value, write.record.sync_count, write.record.dirty) == ("same", 6, False)
    assert write.expected_revision == 4
    hand.answer(ReadLocal, snap(6, rec("a", "same", 6, revision=4)))
    result = hand.done()
    assert (result.pushed, result.conflicts) == (0, ())


# ---- push ----------------------------------------------------------------------------------
def test_dirty_records_are_pushed_and_acknowledged_with_revision_guards() -> None:
    local = snap(2, rec("a", "x", 2, dirty=True, revision=5), rec("b", None, 1, dirty=True))
    hand = flow()
    hand.answer(ReadLocal, local)
    hand.answer(ListRecords, page(2))
    push = push_and_ack(hand, local, 3)
    assert push == PushRecords(
        "ds",
        (RecordPatch(PatchOp.REPLACE, "a", "x", 2), RecordPatch(PatchOp.REMOVE, "b", None, 1)),
        "req-1",
        "dev-1",
    )
    ack = hand.answer(ApplySync, [])
    assert ack.last_sync_count == 3
    assert [(w.record.key, w.record.sync_count, w.record.dirty) for w in ack.writes] == [
        ("a", 3, False),
        ("b", 3, False),
    ]
    assert [w.expected_revision for w in ack.writes] == [5, 1]
    assert all(w.keep_sync_count_on_mismatch for w in ack.writes)
    assert hand.done() == SyncResult("ds", pushed=2, sync_count=3)


def test_last_sync_count_stays_when_another_device_wrote_between_pull_and_push() -> None:
    local = snap(2, rec("a", "x", 2, dirty=True))
    hand = flow()
    hand.answer(ReadLocal, local)
    hand.answer(ListRecords, page(2))
    push_and_ack(hand, local, 4)  # 4 != 2 + 1: someone else's batch is number 3
    ack = hand.answer(ApplySync, [])
    assert ack.last_sync_count is None
    assert ack.writes[0].record.sync_count == 4
    assert hand.done().sync_count == 4


def test_an_edit_made_during_the_sync_is_guarded_and_pushed_as_read_after_apply() -> None:
    hand = flow()
    hand.answer(ReadLocal, snap(1, rec("a", "old", 1, revision=2)))
    hand.answer(ListRecords, page(3, rec("a", "remote", 3)))
    apply = hand.answer(ApplySync, ["a"])  # the app edited "a" meanwhile: the write was skipped
    assert apply.writes[0].expected_revision == 2
    edited = rec("a", "app edit", 1, dirty=True, revision=3)
    push = push_and_ack(hand, snap(3, edited), 4)
    assert push.patches == (RecordPatch(PatchOp.REPLACE, "a", "app edit", 1),)


def test_push_retried_after_a_network_failure_reuses_its_request_id() -> None:
    local = snap(0, rec("a", "x", 0, dirty=True))
    hand = flow(network_retries=2)
    hand.answer(ReadLocal, local)
    hand.answer(ListRecords, page(0))
    hand.answer(ReadLocal, local)
    hand.answer(NewRequestId, "req-1")
    first = hand.fail(PushRecords, OfflineError("connection dropped"))
    second = hand.fail(PushRecords, OfflineError("connection dropped"))
    third = hand.answer(PushRecords, pushed(1, *local.records.values()))
    assert first == second == third
    assert third.client_request_id == "req-1"
    assert hand.answer(ApplySync, []).last_sync_count == 1
    assert hand.done().pushed == 1


def test_push_gives_up_after_network_retries_with_offline_error() -> None:
    local = snap(0, rec("a", "x", 0, dirty=True))
    hand = flow(network_retries=1)
    hand.answer(ReadLocal, local)
    hand.answer(ListRecords, page(0))
    hand.answer(ReadLocal, local)
    hand.answer(NewRequestId, "req-1")
    hand.fail(PushRecords, OfflineError("down"))
    with pytest.raises(OfflineError, match="down"):
        hand.fail(PushRecords, OfflineError("down"))


# ---- conflicts -----------------------------------------------------------------------------
MINE = rec("a", "mine", 1, dirty=True, revision=3, at=T2, by="dev-1")
THEIRS = rec("a", "theirs", 4, at=T1, by="dev-2")


def _resolve(hand: Hand, resolver: Callable[[str, list[Conflict]], list[Resolution]]) -> ApplySync:
    hand.answer(ReadLocal, snap(1, MINE))
    hand.answer(ListRecords, page(4, THEIRS))
    ask = hand.expect(ResolveConflicts)
    assert ask.conflicts == (Conflict("a", MINE, THEIRS),)
    hand.answer(ResolveConflicts, resolver("ds", list(ask.conflicts)))
    return hand.answer(ApplySync, [])


@pytest.mark.parametrize("resolver", [last_writer_wins, local_wins])
def test_conflict_resolved_for_the_local_record_is_pushed_over_the_servers(
    resolver: Callable[[str, list[Conflict]], list[Resolution]],
) -> None:
    hand = flow()
    apply = _resolve(hand, resolver)
    (write,) = apply.writes
    assert (write.record.value, write.record.sync_count, write.record.dirty) == ("mine", 4, True)
    assert write.record.device_last_modified_date == T2
    assert (write.expected_revision, apply.last_sync_count) == (3, 4)
    push = push_and_ack(hand, snap(4, write.record), 5)
    assert push.patches == (RecordPatch(PatchOp.REPLACE, "a", "mine", 4, T2),)
    hand.answer(ApplySync, [])
    result = hand.done()
    assert result.conflicts == (Conflict("a", MINE, THEIRS),)
    assert (result.pushed, result.sync_count) == (1, 5)


def test_conflict_resolved_for_the_remote_record_stores_it_clean_and_pushes_nothing() -> None:
    hand = flow()
    apply = _resolve(hand, remote_wins)
    (write,) = apply.writes
    assert (write.record.value, write.record.sync_count, write.record.dirty) == ("theirs", 4, False)
    assert write.expected_revision == 3
    hand.answer(ReadLocal, snap(4, write.record))
    result = hand.done()
    assert (result.pushed, len(result.conflicts), result.sync_count) == (0, 1, 4)


def test_conflict_resolved_with_a_new_value_is_stamped_and_pushed() -> None:
    hand = flow()
    apply = _resolve(hand, lambda _, cs: [c.resolve_with_value("merged") for c in cs])
    (write,) = apply.writes
    assert (write.record.value, write.record.sync_count, write.record.dirty) == ("merged", 4, True)
    assert write.record.device_last_modified_date == NOW


def test_last_writer_wins_keeps_the_newer_remote_edit() -> None:
    older_mine = rec("a", "mine", 1, dirty=True, revision=3, at=T1)
    newer_theirs = rec("a", "theirs", 4, at=T2)
    hand = flow()
    hand.answer(ReadLocal, snap(1, older_mine))
    hand.answer(ListRecords, page(4, newer_theirs))
    ask = hand.answer(
        ResolveConflicts, last_writer_wins("ds", [Conflict("a", older_mine, newer_theirs)])
    )
    assert isinstance(ask, ResolveConflicts)
    (write,) = hand.answer(ApplySync, []).writes
    assert (write.record.value, write.record.dirty) == ("theirs", False)


def test_local_removal_against_a_remote_update_is_a_conflict() -> None:
    removed = rec("a", None, 1, dirty=True)
    plan = plan_pull({"a": removed}, [rec("a", "theirs", 3)])
    assert [c.key for c in plan.conflicts] == ["a"]
    both_removed = plan_pull({"a": removed}, [rec("a", None, 3)])
    assert both_removed.conflicts == [] and both_removed.writes[0].record.dirty is False


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ([], "unresolved"),
        (None, "returned NoneType"),
        ([Resolution("a", "x", "local"), Resolution("a", "y", "remote")], "twice"),
        ([Resolution("a", "x", "local"), Resolution("zzz", "y", "local")], "not in conflict"),
        (["mine"], "returned a str"),
        ([Resolution("a", 42, "value")], "invalid resolution"),  # type: ignore[arg-type]
        ([Resolution("a", "x", "whatever")], "invalid resolution"),
    ],
)
def test_an_invalid_resolver_answer_is_a_conflict_error_and_nothing_is_applied(
    answer: object, message: str
) -> None:
    hand = flow()
    hand.answer(ReadLocal, snap(1, MINE))
    hand.answer(ListRecords, page(4, THEIRS))
    with pytest.raises(ConflictError, match=message):
        hand.answer(ResolveConflicts, answer)


def test_conflict_rejection_repulls_far_enough_back_and_retries_with_a_new_id() -> None:
    local = snap(5, rec("a", "mine", 2, dirty=True, revision=7, at=T2))
    hand = flow()
    hand.answer(ReadLocal, local)
    hand.answer(ListRecords, page(5))
    hand.answer(ReadLocal, local)
    hand.answer(NewRequestId, "req-1")
    hand.fail(PushRecords, ConflictError("stale", key="a", current=3, expected=2))
    hand.answer(ReadLocal, local)
    assert hand.expect(ListRecords) == ListRecords("ds", 2)  # since min(5, a's count 2)
    hand.answer(ListRecords, page(6, rec("a", "theirs", 3, at=T1)))
    hand.answer(ResolveConflicts, [Resolution("a", "mine", "local")])
    apply = hand.answer(ApplySync, [])
    assert apply.last_sync_count == 6
    resolved = apply.writes[0].record
    hand.answer(ReadLocal, snap(6, resolved))
    hand.answer(NewRequestId, "req-2")
    push = hand.answer(PushRecords, pushed(7, resolved))
    assert push.client_request_id == "req-2"
    assert push.patches[0].sync_count == 3
    assert hand.answer(ApplySync, []).last_sync_count == 7
    assert len(hand.done().conflicts) == 1


def test_conflict_retries_exhausted_end_in_conflict_error() -> None:
    local = snap(1, rec("a", "mine", 1, dirty=True))
    hand = flow(max_retries=2)
    hand.answer(ReadLocal, local)
    for attempt in range(3):
        if attempt:
            hand.answer(ReadLocal, local)
        hand.answer(ListRecords, page(1))
        hand.answer(ReadLocal, local)
        hand.answer(NewRequestId, f"req-{attempt}")
        if attempt < 2:
            hand.fail(PushRecords, ConflictError("stale", key="a"))
    with pytest.raises(ConflictError, match="retries exhausted") as caught:
        hand.fail(PushRecords, ConflictError("stale", key="a", current=9, expected=1))
    assert (caught.value.key, caught.value.current) == ("a", 9)


# ---- deletions and merges ------------------------------------------------------------------
def test_remote_deletion_accepted_drops_the_local_copy() -> None:
    local = snap(2, rec("a", "x", 2))
    hand = flow()
    hand.answer(ReadLocal, local)
    hand.answer(ListRecords, page(3, rec("a", None, 3), deleted=True))
    assert hand.answer(DatasetDeleted, True) == DatasetDeleted("ds", unsynced_changes=False)
    hand.answer(ReadLocal, local)
    hand.answer(DropDataset, None)
    assert hand.done() == SyncResult("ds", sync_count=3, deleted=True)


def test_remote_deletion_keeps_a_dataset_the_app_wrote_to_during_the_sync() -> None:
    hand = flow()
    hand.answer(ReadLocal, snap(2, rec("a", "x", 2, revision=1)))
    hand.answer(ListRecords, page(3, rec("a", None, 3), deleted=True))
    hand.answer(DatasetDeleted, True)
    hand.answer(ReadLocal, snap(2, rec("a", "edited", 2, dirty=True, revision=2)))
    reset = hand.answer(ApplySync, [])  # no DropDataset: recreate instead
    assert (reset.reset_sync_counts, reset.last_sync_count) == (True, 3)
    push = push_and_ack(hand, snap(3, rec("a", "edited", 0, dirty=True, revision=2)), 4)
    assert push.patches == (RecordPatch(PatchOp.REPLACE, "a", "edited", 0),)


def test_remote_deletion_refused_recreates_the_dataset_from_local_data() -> None:
    hand = flow()
    hand.answer(ReadLocal, snap(2, rec("a", "x", 2), rec("b", "y", 2, dirty=True)))
    hand.answer(ListRecords, page(3, rec("a", None, 3), rec("b", None, 3), deleted=True))
    assert hand.answer(DatasetDeleted, False).unsynced_changes is True
    reset = hand.answer(ApplySync, [])
    assert (reset.reset_sync_counts, reset.last_sync_count, reset.writes) == (True, 3, ())
    recreated = snap(3, rec("a", "x", 0, dirty=True), rec("b", "y", 0, dirty=True))
    push = push_and_ack(hand, recreated, 4)
    assert [(p.key, p.sync_count) for p in push.patches] == [("a", 0), ("b", 0)]
    assert hand.answer(ApplySync, []).last_sync_count == 4
    assert hand.done().deleted is False


def test_remote_deletion_of_a_dataset_unknown_locally_asks_nothing() -> None:
    hand = flow()
    hand.answer(ReadLocal, LocalSnapshot(None))
    hand.answer(ListRecords, page(3, deleted=True))
    assert hand.done() == SyncResult("ds", sync_count=3, deleted=True)


def test_local_deletion_is_sent_and_the_local_copy_dropped() -> None:
    hand = flow()
    hand.answer(ReadLocal, snap(4, pending=True))
    hand.answer(NewRequestId, "req-1")
    hand.fail(DeleteRemote, OfflineError("dropped"))
    assert hand.answer(DeleteRemote, 5) == DeleteRemote("ds", "req-1")  # same id again
    hand.answer(ReadLocal, snap(4, pending=True))
    hand.answer(DropDataset, None)
    assert hand.done() == SyncResult("ds", sync_count=5, deleted=True)


def test_records_written_after_a_local_deletion_recreate_the_dataset() -> None:
    hand = flow()
    hand.answer(ReadLocal, snap(4, rec("n", "new", 0, dirty=True), pending=True))
    hand.answer(NewRequestId, "req-1")
    hand.answer(DeleteRemote, 5)
    reset = hand.answer(ApplySync, [])
    assert (reset.reset_sync_counts, reset.clear_deleted_pending, reset.last_sync_count) == (
        True,
        True,
        5,
    )
    local = snap(5, rec("n", "new", 0, dirty=True))
    hand.answer(ReadLocal, local)
    assert hand.answer(ListRecords, page(5)) == ListRecords("ds", 5)
    push = push_and_ack(hand, local, 6)
    assert push.patches == (RecordPatch(PatchOp.REPLACE, "n", "new", 0),)
    assert hand.answer(ApplySync, []).last_sync_count == 6


def test_datasets_merged_callback_can_stop_the_sync_before_anything_is_applied() -> None:
    hand = flow()
    hand.answer(ReadLocal, snap(1))
    hand.answer(ListRecords, RecordPage("ds", 2, False, (rec("a", "1", 2),), None, ("ds.g1",)))
    assert hand.answer(DatasetsMerged, False) == DatasetsMerged("ds", ("ds.g1",))
    assert hand.done() == SyncResult("ds", sync_count=1, merged_dataset_names=("ds.g1",))


def test_datasets_merged_callback_answering_true_continues_the_sync() -> None:
    hand = flow()
    hand.answer(ReadLocal, snap(1))
    hand.answer(ListRecords, RecordPage("ds", 2, False, (rec("a", "1", 2),), None, ("ds.g1",)))
    hand.answer(DatasetsMerged, True)
    assert hand.answer(ApplySync, []).last_sync_count == 2
    hand.answer(ReadLocal, snap(2, rec("a", "1", 2)))
    assert hand.done().merged_dataset_names == ("ds.g1",)


# ---- sync bases ----------------------------------------------------------------------------
def test_conflict_carries_the_base_from_the_snapshot_and_settling_moves_it() -> None:
    hand = flow()
    local = LocalSnapshot(snap(1).state, {"a": MINE}, {"a": "synced"})
    hand.answer(ReadLocal, local)
    hand.answer(ListRecords, page(4, THEIRS))
    (conflict,) = hand.expect(ResolveConflicts).conflicts
    assert conflict.base == Record("a", "synced", 1)
    hand.answer(ResolveConflicts, [conflict.resolve_with_value("merged")])
    (write,) = hand.expect(ApplySync).writes
    assert (write.record.value, write.record.dirty, write.base) == ("merged", True, "theirs")


def test_conflict_base_is_unknown_without_a_stored_base() -> None:
    plan = plan_pull({"a": MINE}, [THEIRS])
    assert plan.conflicts == [Conflict("a", MINE, THEIRS, base=None)]
    plan = plan_pull({"a": MINE}, [THEIRS], {"a": None})
    assert plan.conflicts[0].base == Record("a", None, 1)


# ---- partial snapshots: a sync reads only the records it touches ----------------------------
def partial(last: int, *records: Record, pending: bool = False) -> LocalSnapshot:
    state = DatasetState("ds", last_sync_count=last, deleted_pending=pending)
    return LocalSnapshot(state, {r.key: r for r in records}, complete=False)


def test_a_partial_snapshot_reads_the_pulled_keys_before_planning() -> None:
    hand = flow()
    hand.answer(ReadLocal, partial(1, rec("d", "mine", 1, dirty=True, revision=2)))
    hand.answer(ListRecords, page(3, rec("a", "new", 3)))
    read = hand.answer(ReadLocal, partial(1, rec("a", "old", 1, revision=5)))
    assert read == ReadLocal("ds", only=frozenset({"a"}))
    apply = hand.answer(ApplySync, [])
    assert [(w.record.key, w.expected_revision) for w in apply.writes] == [("a", 5)]
    # The snapshot a push is built from: its never-synced records are noted as sent with it.
    assert hand.expect(ReadLocal) == ReadLocal("ds", only=frozenset(), for_push=True)


def test_a_partial_snapshot_without_pulled_records_reads_nothing_more() -> None:
    hand = flow()
    hand.answer(ReadLocal, partial(3))
    hand.answer(ListRecords, page(3))
    hand.answer(ReadLocal, partial(3))  # the dirty records before a push: none
    assert hand.done() == SyncResult("ds", sync_count=3)


def test_a_remote_deletion_reads_every_record_before_dropping() -> None:
    hand = flow()
    hand.answer(ReadLocal, partial(1))
    hand.answer(ListRecords, page(3, deleted=True))
    assert hand.answer(ReadLocal, snap(1, rec("a", "1", 1))) == ReadLocal("ds")
    hand.answer(DatasetDeleted, True)
    hand.answer(ReadLocal, snap(1, rec("a", "1", 1)))
    hand.answer(DropDataset, None)
    assert hand.done() == SyncResult("ds", sync_count=3, deleted=True)


def test_a_pending_local_deletion_reads_every_record_first() -> None:
    hand = flow()
    hand.answer(ReadLocal, partial(2, pending=True))
    assert hand.answer(ReadLocal, snap(2, pending=True)) == ReadLocal("ds")
    hand.answer(NewRequestId, "req-1")
    hand.answer(DeleteRemote, 3)
    hand.answer(ReadLocal, snap(2, pending=True))
    hand.answer(DropDataset, None)
    assert hand.done() == SyncResult("ds", sync_count=3, deleted=True)


# ---- a dataset the server never had --------------------------------------------------------
def test_a_dataset_unknown_to_the_server_is_pushed_from_the_first_read_without_a_pull() -> None:
    local = snap(0, rec("a", "1", 0, dirty=True, revision=1), rec("b", "2", 0, dirty=True))
    hand = flow(unknown_to_server=True)
    hand.answer(ReadLocal, local)
    hand.answer(NewRequestId, "req-1")
    push = hand.answer(PushRecords, pushed(1, *local.records.values()))
    assert [p.key for p in push.patches] == ["a", "b"]
    assert all(p.sync_count == 0 for p in push.patches)
    ack = hand.answer(ApplySync, [])
    assert ack.last_sync_count == 1 and len(ack.writes) == 2
    assert (hand.done().pushed, hand.done().pulled) == (2, 0)


def test_unknown_to_the_server_but_refused_then_pulls_as_usual() -> None:
    local = snap(0, rec("a", "mine", 0, dirty=True, revision=3, at=T2))
    hand = flow(unknown_to_server=True)
    hand.answer(ReadLocal, local)
    hand.answer(NewRequestId, "req-1")
    hand.fail(PushRecords, ConflictError("stale", key="a", current=1, expected=0))
    hand.answer(ReadLocal, local)
    assert hand.expect(ListRecords) == ListRecords("ds", 0)
    hand.answer(ListRecords, page(1, rec("a", "theirs", 1, at=T1)))
    hand.answer(ResolveConflicts, [Resolution("a", "mine", "local")])
    resolved = hand.answer(ApplySync, []).writes[0].record
    hand.answer(ReadLocal, snap(1, resolved))
    hand.answer(NewRequestId, "req-2")
    assert hand.answer(PushRecords, pushed(2, resolved)).patches[0].sync_count == 1
    assert hand.answer(ApplySync, []).last_sync_count == 2


@pytest.mark.parametrize("state", [snap(3, rec("a", "1", 3, dirty=True)), snap(0, pending=True)])
def test_unknown_to_the_server_pulls_anyway_once_synced_or_pending_deletion(
    state: LocalSnapshot,
) -> None:
    hand = flow(unknown_to_server=True)
    hand.answer(ReadLocal, state)
    if state.state is not None and state.state.deleted_pending:
        hand.answer(NewRequestId, "req-1")
        hand.expect(DeleteRemote)  # the deletion goes first, as without the hint
    else:
        assert hand.expect(ListRecords) == ListRecords("ds", 3)
