"""In-process fakes of the server side: `MemoryServer` and its `MemoryBackend` view.

`MemoryServer` models the sync protocol of ``server_schema/schema.graphql`` with the same
semantics as `cogsync serve`: per-dataset sync counts, per-record count checks, batches
applied all-or-nothing, idempotent client request ids, tombstones, deletion, identity
merge, paged pulls with a fixed up-to count, limits via `cogsync.limits`, and change
listeners for push notifications. Caller mistakes raise `UsageError`, as the server's
InvalidParameterException does through a real backend. `MemoryBackend` is one identity's
`RemoteBackend` on it, with fault injection for tests: go offline, drop the next call
before or after the server applied it, run an action just before a call (another device
writing mid-sync).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from cogsync import limits as checks
from cogsync.exceptions import ConflictError, InvalidValueError, OfflineError, UsageError
from cogsync.models import (
    PROTOCOL_VERSION,
    PatchOp,
    PushResult,
    Record,
    RecordPage,
    RecordPatch,
    RemoteDataset,
    ServerInfo,
    utcnow,
)

__all__ = ["Call", "DatasetChange", "MemoryBackend", "MemoryServer"]


@dataclass(frozen=True, slots=True)
class DatasetChange:
    """A push notification: published after every accepted batch or deletion (no values)."""

    identity_id: str
    dataset_name: str
    sync_count: int
    deleted: bool


@dataclass(slots=True)
class _Dataset:
    sync_count: int = 0
    deleted: bool = False
    records: dict[str, Record] = field(default_factory=dict)
    last_modified: datetime | None = None
    merged_into: str | None = None

    def live(self) -> dict[str, str]:
        return {k: r.value for k, r in self.records.items() if r.value is not None}


def _token(payload: list[object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


class MemoryServer:
    """Every identity's datasets in memory, with the semantics of `cogsync serve`.

    Args:
        limits: the limits to enforce and announce.
        page_size: records per `list_records` page.
        clock: the source of server timestamps.

    Attributes:
        listeners: called with a `DatasetChange` after every accepted batch or deletion.
        changes: every published `DatasetChange`, oldest first.
    """

    def __init__(
        self,
        *,
        limits: checks.Limits = checks.DEFAULT_LIMITS,
        page_size: int = 1024,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.limits = limits
        self.page_size = page_size
        self.clock = clock
        self.listeners: list[Callable[[DatasetChange], None]] = []
        self.changes: list[DatasetChange] = []
        self._data: dict[str, dict[str, _Dataset]] = {}
        self._requests: dict[tuple[str, str], tuple[str, str, PushResult | int]] = {}

    # ---- inspection --------------------------------------------------------------------
    def values(self, identity_id: str, dataset_name: str) -> dict[str, str]:
        """The live key/values of a dataset ({} if absent or deleted)."""
        dataset = self._data.get(identity_id, {}).get(dataset_name)
        return {} if dataset is None else dataset.live()

    def sync_count(self, identity_id: str, dataset_name: str) -> int:
        """A dataset's current sync count (0 if absent)."""
        dataset = self._data.get(identity_id, {}).get(dataset_name)
        return 0 if dataset is None else dataset.sync_count

    def identities(self) -> list[str]:
        """Identity ids that hold any dataset."""
        return sorted(i for i, datasets in self._data.items() if datasets)

    # ---- protocol ------------------------------------------------------------------------
    def server_info(self) -> ServerInfo:
        """Protocol version and limits."""
        lim = self.limits
        return ServerInfo(
            PROTOCOL_VERSION, lim.max_datasets, lim.max_records, lim.max_dataset_bytes,
            lim.max_key_bytes,
        )  # fmt: skip

    def list_datasets(self, identity_id: str) -> list[RemoteDataset]:
        """All datasets of an identity by name, deleted ones included."""
        out = []
        for name, ds in sorted(self._data.get(identity_id, {}).items()):
            live = ds.live()
            size = sum(checks.record_size(k, v) for k, v in live.items())
            out.append(
                RemoteDataset(name, ds.sync_count, size, len(live), ds.last_modified, ds.deleted)
            )
        return out

    def list_records(
        self, identity_id: str, dataset_name: str, last_sync_count: int, next_token: str | None
    ) -> RecordPage:
        """One page of records with ``last_sync_count < sync_count <= up_to`` by (count, key)."""
        checks.validate_name(dataset_name, self.limits)
        datasets = self._data.get(identity_id, {})
        ds = datasets.get(dataset_name) or _Dataset()
        up_to, after = ds.sync_count, (last_sync_count, "")
        if next_token is not None:
            try:
                name, since, up_to, count, key = json.loads(base64.urlsafe_b64decode(next_token))
            except (ValueError, TypeError) as exc:
                raise UsageError(f"invalid page token {next_token!r}: restart the pull") from exc
            if (name, since) != (dataset_name, last_sync_count):
                raise UsageError("page token belongs to another pull: restart the pull")
            after = (count, key)
        matching = sorted(
            (r for r in ds.records.values() if last_sync_count < r.sync_count <= up_to),
            key=lambda r: (r.sync_count, r.key),
        )
        rest = [r for r in matching if (r.sync_count, r.key) > after]
        page = tuple(rest[: self.page_size])
        token = None
        if len(rest) > self.page_size:
            last = page[-1]
            token = _token([dataset_name, last_sync_count, up_to, last.sync_count, last.key])
        merged = tuple(
            n
            for n, d in sorted(datasets.items())
            if d.merged_into == dataset_name and not d.deleted
        )
        return RecordPage(dataset_name, up_to, ds.deleted, page, token, merged)

    def push_records(
        self,
        identity_id: str,
        dataset_name: str,
        patches: Sequence[RecordPatch],
        *,
        client_request_id: str,
        device_id: str,
    ) -> PushResult:
        """Apply ``patches`` all-or-nothing as one new sync count (replays return the first)."""
        checks.validate_name(dataset_name, self.limits)
        replay = self._replay(identity_id, client_request_id, "push", dataset_name)
        if replay is not None:
            assert isinstance(replay, PushResult)
            return replay
        changes = self._validated(patches)
        datasets = self._data.setdefault(identity_id, {})
        ds = datasets.get(dataset_name) or _Dataset()
        for patch in changes.values():
            stored = ds.records.get(patch.key)
            current = 0 if stored is None else stored.sync_count
            tombstone_reuse = stored is not None and stored.value is None and patch.sync_count == 0
            if patch.sync_count != current and not tombstone_reuse:
                raise ConflictError(
                    f"record {patch.key!r} of dataset {dataset_name!r} is at syncCount "
                    f"{current} on the server but the push expected {patch.sync_count}; "
                    "nothing was applied: pull, resolve and push again",
                    key=patch.key,
                    current=current,
                    expected=patch.sync_count,
                )
        if dataset_name not in datasets or ds.deleted:
            live = sum(1 for d in datasets.values() if not d.deleted)
            checks.check_dataset_count(live + 1, self.limits)
        checks.check_dataset_totals(
            dataset_name, ds.live(), {k: p.value for k, p in changes.items()}, self.limits
        )
        now = self.clock()
        ds.sync_count += 1
        ds.deleted, ds.last_modified = False, now
        written = tuple(
            Record(p.key, p.value, ds.sync_count, now, device_id, p.device_last_modified_date)
            for p in changes.values()
        )
        ds.records.update((r.key, r) for r in written)
        datasets[dataset_name] = ds
        result = PushResult(dataset_name, ds.sync_count, written)
        self._requests[identity_id, client_request_id] = ("push", dataset_name, result)
        self._publish(DatasetChange(identity_id, dataset_name, ds.sync_count, False))
        return result

    def delete_dataset(self, identity_id: str, dataset_name: str, *, client_request_id: str) -> int:
        """Delete a dataset: its live records become tombstones; returns the sync count."""
        checks.validate_name(dataset_name, self.limits)
        replay = self._replay(identity_id, client_request_id, "delete", dataset_name)
        if replay is not None:
            assert isinstance(replay, int)
            return replay
        ds = self._data.get(identity_id, {}).get(dataset_name)
        if ds is not None and not ds.deleted:
            now = self.clock()
            ds.sync_count += 1
            ds.deleted, ds.last_modified = True, now
            for key, record in ds.records.items():
                if record.value is not None:
                    ds.records[key] = Record(key, None, ds.sync_count, now)
            self._publish(DatasetChange(identity_id, dataset_name, ds.sync_count, True))
        count = 0 if ds is None else ds.sync_count
        self._requests[identity_id, client_request_id] = ("delete", dataset_name, count)
        return count

    def merge_identity(self, source_identity_id: str, target_identity_id: str) -> list[str]:
        """Move every live dataset of ``source`` to ``target`` as ``<name>.<source>``.

        ``list_records`` of ``<name>`` then reports the merged names until they are deleted.
        Returns the new dataset names.
        """
        moved = []
        target = self._data.setdefault(target_identity_id, {})
        for name, ds in sorted(self._data.pop(source_identity_id, {}).items()):
            if ds.deleted:
                continue
            new_name = f"{name}.{source_identity_id}"[: self.limits.max_name_length]
            count = max(ds.sync_count, target[new_name].sync_count if new_name in target else 0)
            records = {
                k: replace(r, sync_count=count + 1)
                for k, r in ds.records.items()
                if r.value is not None
            }
            target[new_name] = _Dataset(count + 1, False, records, self.clock(), name)
            moved.append(new_name)
            self._publish(DatasetChange(target_identity_id, new_name, count + 1, False))
        return moved

    # ---- internals ---------------------------------------------------------------------
    def _replay(
        self, identity_id: str, request_id: str, op: str, name: str
    ) -> PushResult | int | None:
        if not request_id:
            raise UsageError("clientRequestId must not be empty")
        seen = self._requests.get((identity_id, request_id))
        if seen is None:
            return None
        if seen[:2] != (op, name):
            raise UsageError(
                f"clientRequestId {request_id!r} was already used for another request; "
                "use a fresh id per request"
            )
        return seen[2]

    def _validated(self, patches: Sequence[RecordPatch]) -> dict[str, RecordPatch]:
        changes: dict[str, RecordPatch] = {}
        for patch in patches:
            key = checks.validate_key(patch.key, self.limits)
            if key in changes:
                raise UsageError(f"record key {key!r} appears twice in one push")
            if patch.sync_count < 0:
                raise UsageError(f"syncCount of record {key!r} is negative")
            if patch.op is PatchOp.REMOVE:
                patch = replace(patch, value=None)
            elif patch.value is None:
                raise InvalidValueError(f"REPLACE of record {key!r} has no value")
            else:
                checks.validate_value(patch.value)
            changes[key] = patch
        return changes

    def _publish(self, change: DatasetChange) -> None:
        self.changes.append(change)
        for listener in list(self.listeners):
            listener(change)


@dataclass(frozen=True, slots=True)
class Call:
    """One call a `MemoryBackend` received (its ``client_request_id`` for mutations)."""

    method: str
    dataset_name: str | None = None
    client_request_id: str | None = None


@dataclass(slots=True)
class _Fault:
    method: str
    after_apply: bool
    times: int


class MemoryBackend:
    """One identity's `RemoteBackend` on a `MemoryServer`, with fault injection.

    Attributes:
        offline: while True every call raises `OfflineError` before reaching the server.
        calls: every call received, oldest first.
    """

    def __init__(self, server: MemoryServer, identity_id: str) -> None:
        self.server = server
        self.identity_id = identity_id
        self.offline = False
        self.calls: list[Call] = []
        self._faults: list[_Fault] = []
        self._before: list[tuple[str, Callable[[], object]]] = []

    def fail_next(self, method: str, *, after_apply: bool = False, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` raise `OfflineError`.

        With ``after_apply`` the server applies the call first and the answer is lost (a
        connection dropped mid-push).
        """
        self._faults.append(_Fault(method, after_apply, times))

    def before_next(self, method: str, action: Callable[[], object]) -> None:
        """Run ``action`` once, just before the server handles the next call of ``method``.

        Actions queued for the same method run one per call, in order.
        """
        self._before.append((method, action))

    def _enter(self, call: Call) -> None:
        self.calls.append(call)
        entry = next((e for e in self._before if e[0] == call.method), None)
        if entry is not None:
            self._before.remove(entry)
            entry[1]()
        if self.offline:
            raise OfflineError("the in-memory server is unreachable (offline)")
        self._trip(call.method, after_apply=False)

    def _trip(self, method: str, *, after_apply: bool) -> None:
        for fault in self._faults:
            if fault.method == method and fault.after_apply == after_apply:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                when = "after the server applied it" if after_apply else "before it was sent"
                raise OfflineError(f"connection dropped during {method} ({when})")

    async def server_info(self) -> ServerInfo:
        """Protocol version and limits."""
        self._enter(Call("server_info"))
        return self.server.server_info()

    async def list_datasets(self) -> list[RemoteDataset]:
        """All datasets of the identity, including deleted ones."""
        self._enter(Call("list_datasets"))
        result = self.server.list_datasets(self.identity_id)
        self._trip("list_datasets", after_apply=True)
        return result

    async def list_records(
        self, dataset_name: str, last_sync_count: int, next_token: str | None = None
    ) -> RecordPage:
        """One page of records with sync_count > last_sync_count."""
        self._enter(Call("list_records", dataset_name))
        page = self.server.list_records(self.identity_id, dataset_name, last_sync_count, next_token)
        self._trip("list_records", after_apply=True)
        return page

    async def push_records(
        self,
        dataset_name: str,
        patches: Sequence[RecordPatch],
        *,
        client_request_id: str,
        device_id: str,
    ) -> PushResult:
        """Apply ``patches`` all-or-nothing (idempotent per ``client_request_id``)."""
        self._enter(Call("push_records", dataset_name, client_request_id))
        result = self.server.push_records(
            self.identity_id,
            dataset_name,
            patches,
            client_request_id=client_request_id,
            device_id=device_id,
        )
        self._trip("push_records", after_apply=True)
        return result

    async def delete_dataset(self, dataset_name: str, *, client_request_id: str) -> int:
        """Delete a dataset; return its new sync count."""
        self._enter(Call("delete_dataset", dataset_name, client_request_id))
        count = self.server.delete_dataset(
            self.identity_id, dataset_name, client_request_id=client_request_id
        )
        self._trip("delete_dataset", after_apply=True)
        return count

    async def close(self) -> None:
        """Nothing to release."""
