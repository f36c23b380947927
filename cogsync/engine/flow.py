"""The sync algorithm for one dataset, written once as a generator of commands.

`sync_dataset` performs no I/O: it yields `cogsync.engine.commands` and receives their
results, so the same code runs against every store and backend and is tested by hand.

Design rules (each fixes a failure mode of Cognito Sync's clients):

- A conflict is a dirty local record whose server version has a NEWER sync count AND a
  different value. A dirty record whose value equals the server's just adopts the server's
  sync count and becomes clean: it can never get stuck.
- Every store write a sync makes carries the record revision seen in the snapshot it was
  planned from, so an edit the app makes while the sync runs is never overwritten.
- ``last_sync_count`` is stored in the same transaction as the records it covers. After a
  push it moves to the push's count only if that is exactly the pulled count + 1; otherwise
  another device wrote in between and the next pull must fetch its records.
- A push retried after a network failure reuses its client request id (the server applies
  it once); a push after a conflict rejection is a new batch with a new id, preceded by a
  re-pull far enough back to see every record it conflicted on.
- A local copy is dropped (deleted on the server, or here) only if the app did not write
  to it during the sync; otherwise the data is kept and recreates the dataset.
- The flow always ends in a `SyncResult` or raises a typed `CogsyncError`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

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
from cogsync.engine.conflicts import check_resolutions
from cogsync.exceptions import ConflictError, OfflineError
from cogsync.models import (
    Acknowledgements,
    Conflict,
    LocalRecords,
    PatchOp,
    PatchRows,
    PulledRecords,
    PushResult,
    Record,
    RecordRow,
    RecordWrite,
    Resolution,
    SyncResult,
    SyncWrites,
    record_rows,
    utcnow,
)

__all__ = ["Flow", "plan_pull", "sync_dataset"]

T = TypeVar("T")
_DIRTY: frozenset[str] = frozenset()  # ReadLocal(only=_DIRTY): the dirty records alone
Flow = Generator[Command[Any], Any, T]


def _ask(command: Command[T]) -> Flow[T]:
    result: T = yield command
    return result


def _mutate(command: Command[T], network_retries: int) -> Flow[T]:
    """Run a remote mutation, re-sending the identical command after a network failure."""
    for attempt in range(network_retries + 1):
        try:
            return (yield from _ask(command))
        except OfflineError:
            if attempt == network_retries:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class _Pull:
    up_to: int
    deleted: bool
    records: Sequence[Record]
    merged_names: tuple[str, ...]


def _pull(name: str, since: int) -> Flow[_Pull]:
    """Fetch every page since ``since``; the first page fixes the up-to sync count."""
    first = page = yield from _ask(ListRecords(name, since))
    pages = [page.records]
    while page.next_token is not None:
        page = yield from _ask(ListRecords(name, since, page.next_token))
        pages.append(page.records)
    records = pages[0] if len(pages) == 1 else _joined(pages)
    return _Pull(first.sync_count, first.deleted, records, first.merged_dataset_names)


def _joined(pages: list[Sequence[Record]]) -> Sequence[Record]:
    if all(isinstance(page, PulledRecords) for page in pages):
        return PulledRecords.join(pages)
    return tuple(record for page in pages for record in page)


@dataclass(slots=True)
class PullPlan:
    """What a pull means for the local store: writes to apply and conflicts to resolve.

    ``pulled`` holds the clean records for keys with no local record, each to be written
    as ``RecordWrite(record, 0)`` (`sync_writes` gives them all as one sequence).
    """

    writes: list[RecordWrite] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    pulled: Sequence[Record] = ()

    def sync_writes(self) -> SyncWrites:
        """``writes``, then ``pulled`` as writes expecting revision 0."""
        return SyncWrites(self.writes, self.pulled)


def plan_pull(
    local: Mapping[str, Record],
    remote: Iterable[Record],
    bases: Mapping[str, str | None] | None = None,
) -> PullPlan:
    """Decide, record by record, how pulled ``remote`` records meet the ``local`` ones.

    ``bases`` (key -> the value a dirty record's edit started from) gives each conflict
    its `Conflict.base`; a key absent from it has an unknown base.
    """
    bases = bases or {}
    plan = PullPlan()
    if isinstance(remote, PulledRecords):  # no `Record` made for a key this device lacks
        if not local:
            plan.pulled = remote
            return plan
        rows = remote.rows
        plan.pulled = PulledRecords(row for row in rows if row[0] not in local)
        remote = [Record(*row) for row in rows if row[0] in local]
    pulled: list[Record] = []
    for theirs in remote:
        ours = local.get(theirs.key)
        if ours is None:
            pulled.append(_clean(theirs))  # tombstones too: a later put carries the count
        elif theirs.sync_count < ours.sync_count:
            continue  # this device already stores a newer server version
        elif ours.value == theirs.value:
            if ours.dirty or theirs.sync_count > ours.sync_count:
                # same value: adopt the server's count, stay clean
                plan.writes.append(RecordWrite(_clean(theirs), ours.revision))
        elif not ours.dirty:
            plan.writes.append(RecordWrite(_clean(theirs), ours.revision))
        elif theirs.sync_count > ours.sync_count:
            base = None
            if theirs.key in bases:
                base = Record(theirs.key, bases[theirs.key], ours.sync_count)
            plan.conflicts.append(Conflict(theirs.key, ours, theirs, base))
        # else: a dirty edit made on top of this very server version; it will be pushed
    if pulled:
        plan.pulled = pulled
    return plan


def _clean(record: Record) -> Record:
    """``record`` marked clean (pulled records usually are already: no copy then)."""
    return replace(record, dirty=False) if record.dirty else record


def _settle(conflict: Conflict, resolution: Resolution, now: datetime) -> RecordWrite:
    """The store write that settles ``conflict`` the way ``resolution`` says."""
    ours, theirs = conflict.local, conflict.remote
    if resolution.value == theirs.value:
        return RecordWrite(_clean(theirs), expected_revision=ours.revision)
    edited = ours.device_last_modified_date
    if resolution.source == "value" or resolution.value != ours.value:
        edited = now
    settled = replace(
        ours,
        value=resolution.value,
        sync_count=theirs.sync_count,
        device_last_modified_date=edited,
        dirty=True,
    )
    # The settled value is an edit on top of the server's version: that is its new base.
    return RecordWrite(settled, expected_revision=ours.revision, base=theirs.value)


def _local_records(records: Mapping[str, Record]) -> LocalRecords:
    if isinstance(records, LocalRecords):
        return records
    return LocalRecords(records.values())


def _patches(dirty: Iterable[RecordRow]) -> PatchRows:
    """The patches pushing ``dirty`` records (a None value removes)."""
    remove, replace_ = PatchOp.REMOVE.value, PatchOp.REPLACE.value
    return PatchRows(
        (remove if value is None else replace_, key, value, count, device)
        for key, value, count, _, _, device in dirty
    )


def _acknowledge(
    pushed: Iterable[RecordRow], result: PushResult, revisions: Mapping[str, int]
) -> Acknowledgements:
    """Writes marking pushed records clean with the server's new sync counts
    (``revisions``: each pushed key's local revision when it was read for the push)."""
    stored = {row[0]: row for row in record_rows(result.records)}
    count = result.sync_count
    return Acknowledgements(
        (*(stored.get(mine[0]) or (*mine[:2], count, *mine[3:])), revisions[mine[0]])
        for mine in pushed
    )


def sync_dataset(
    name: str,
    *,
    device_id: str,
    max_retries: int = 5,
    network_retries: int = 2,
    clock: Callable[[], datetime] = utcnow,
    unknown_to_server: bool = False,
) -> Flow[SyncResult]:
    """Synchronize dataset ``name``: delete, pull, resolve conflicts, apply, push.

    Args:
        name: the dataset.
        device_id: this device's id, sent with every push.
        max_retries: how many times a push rejected with a conflict is re-planned and
            retried before giving up.
        network_retries: how many times a push or delete that failed with `OfflineError`
            is re-sent unchanged (same client request id) before the error propagates.
        clock: the time stamped on values a resolver invents.
        unknown_to_server: the server was just seen without this dataset (no merged one
            either). If it never synced here, its first pull could only be empty: it is
            skipped, and the push carries the dirty records the first read found. (Had
            another device created it meanwhile, the push is refused or does not advance
            ``last_sync_count``, and the next pull fetches what it wrote.)

    Returns:
        What the sync did. Raises `ConflictError` when retries are exhausted or the
        resolver answered wrongly, `OfflineError` when the server is unreachable (local
        data intact), and whatever the store, backend or callbacks raise.
    """
    # A dataset unknown to the server may push from this very read: make it one for a push.
    first = yield from _ask(ReadLocal(name, only=_DIRTY, for_push=unknown_to_server))
    if first.state is not None and first.state.deleted_pending and not first.complete:
        first = yield from _ask(ReadLocal(name))  # deciding to drop needs every record
    snapshot: LocalSnapshot | None = first
    state = first.state
    since = state.last_sync_count if state else 0
    if state is not None and state.deleted_pending:
        request_id = yield from _ask(NewRequestId())
        since = yield from _mutate(DeleteRemote(name, request_id), network_retries)
        live = any(r.value is not None for r in first.records.values())
        if not live and (yield from _drop_unless_edited(name, first)):
            return SyncResult(name, sync_count=since, deleted=True)
        # Records written after the deletion: push them into a new dataset.
        yield from _ask(
            ApplySync(
                name, last_sync_count=since, clear_deleted_pending=True, reset_sync_counts=True
            )
        )
        snapshot = None

    conflicts: list[Conflict] = []
    pulled: set[str] = set()
    merged: tuple[str, ...] = ()
    rejected = 0
    fresh = unknown_to_server and state is not None and since == 0 and not state.deleted_pending
    while True:
        if snapshot is None:
            snapshot = yield from _ask(ReadLocal(name, only=_DIRTY))
        if fresh:
            pull = _Pull(0, False, (), ())
        else:
            pull = yield from _pull(name, since)
        if pull.merged_names and not merged:
            merged = pull.merged_names
            if not (yield from _ask(DatasetsMerged(name, merged))):
                return SyncResult(name, sync_count=since, merged_dataset_names=merged)

        if pull.deleted:
            if not snapshot.complete:
                snapshot = yield from _ask(ReadLocal(name))  # deciding to drop needs every record
            if snapshot.state is None:
                return SyncResult(name, sync_count=pull.up_to, deleted=True)
            dirty = any(r.dirty for r in snapshot.records.values())
            if (yield from _ask(DatasetDeleted(name, unsynced_changes=dirty))) and (
                yield from _drop_unless_edited(name, snapshot)
            ):
                return SyncResult(name, sync_count=pull.up_to, deleted=True)
            # Kept (or edited during this sync): recreate the dataset from the local data.
            apply = ApplySync(name, last_sync_count=pull.up_to, reset_sync_counts=True)
        else:
            keys = frozenset(row[0] for row in record_rows(pull.records))
            pulled.update(keys)
            if keys and not snapshot.complete:
                # Only the pulled keys meet local records: read those (and the dirty ones).
                snapshot = yield from _ask(ReadLocal(name, only=keys))
            plan = plan_pull(snapshot.records, pull.records, snapshot.bases)
            if plan.conflicts:
                answer = yield from _ask(ResolveConflicts(name, tuple(plan.conflicts)))
                resolved = check_resolutions(name, plan.conflicts, answer)
                now = clock()
                plan.writes.extend(_settle(c, resolved[c.key], now) for c in plan.conflicts)
                conflicts.extend(plan.conflicts)
            apply = ApplySync(name, plan.sync_writes(), last_sync_count=pull.up_to)
        # A pulled write skipped by its revision guard (the app wrote the key meanwhile)
        # keeps last_sync_count below it; so must every later step of this sync.
        behind: int | None = None
        if apply.writes or apply.reset_sync_counts or pull.up_to != since:
            skipped = set((yield from _ask(apply)) or ())
            if skipped:
                missed = [w.record.sync_count for w in apply.writes if w.record.key in skipped]
                behind = min(missed) - 1 if missed else None

        if fresh:
            local = snapshot  # the first read, made for a push (never-synced records noted)
        else:
            local = yield from _ask(ReadLocal(name, only=_DIRTY, for_push=True))
        fresh = False  # a retry pulls
        # The push waits on the network holding rows and revisions, not the snapshot's
        # records: a 1,024-record push keeps no objects for the collector to scan meanwhile.
        to_push, revisions = _local_records(local.records).dirty()
        if not to_push:
            return _result(name, pulled, 0, conflicts, pull.up_to, merged)
        snapshot = None
        del local
        patches = _patches(to_push)
        request_id = yield from _ask(NewRequestId())
        try:
            result = yield from _mutate(
                PushRecords(name, patches, request_id, device_id), network_retries
            )
        except ConflictError as exc:
            rejected += 1
            if rejected > max_retries:
                raise ConflictError(
                    f"dataset {name!r}: push rejected by conflicts {rejected} times, retries "
                    f"exhausted ({exc}); another device keeps writing -- sync again later",
                    key=exc.key,
                    current=exc.current,
                    expected=exc.expected,
                ) from exc
            # Re-pull far enough back to see the server version of every pushed record.
            since = min([pull.up_to, *(p.sync_count for p in patches)])
            since = since if behind is None else min(since, behind)
            snapshot = None
            continue
        advanced = result.sync_count if result.sync_count == pull.up_to + 1 else None
        advanced = advanced if behind is None else None
        acks = _acknowledge(to_push, result, revisions)
        yield from _ask(ApplySync(name, acks, last_sync_count=advanced))
        return _result(name, pulled, len(patches), conflicts, result.sync_count, merged)


def _drop_unless_edited(name: str, seen: LocalSnapshot) -> Flow[bool]:
    """Drop the local dataset unless the app wrote to it since ``seen``; True if dropped."""
    now = yield from _ask(ReadLocal(name))
    for key, record in now.records.items():
        before = seen.records.get(key)
        if before is None or before.revision != record.revision:
            return False
    yield from _ask(DropDataset(name))
    return True


def _result(
    name: str,
    pulled: set[str],
    pushed: int,
    conflicts: list[Conflict],
    sync_count: int,
    merged: tuple[str, ...],
) -> SyncResult:
    return SyncResult(
        name,
        pulled=len(pulled),
        pushed=pushed,
        conflicts=tuple(conflicts),
        sync_count=sync_count,
        merged_dataset_names=merged,
    )
