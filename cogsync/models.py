"""The domain values shared by the client, the sync engine, the backends and the server.

All are immutable dataclasses; datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Self, TypeVar, overload

__all__ = [
    "Acknowledgements",
    "Conflict",
    "DatasetMetadata",
    "DatasetState",
    "DatasetSummary",
    "LocalRecords",
    "PatchOp",
    "PatchRows",
    "PulledRecords",
    "PushResult",
    "Record",
    "RecordPage",
    "RecordPatch",
    "RecordWrite",
    "RemoteDataset",
    "Resolution",
    "ServerInfo",
    "SyncResult",
    "SyncWrites",
    "patch_rows",
    "record_rows",
    "utcnow",
]

_T = TypeVar("_T")

PROTOCOL_VERSION = 1


def utcnow() -> datetime:
    """The current time, timezone-aware UTC, truncated to milliseconds (the wire precision)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True, slots=True, init=False)
class Record:
    """One key/value record of a dataset, as stored locally or on the server.

    ``value`` is None for a removed record (a tombstone kept so other devices learn of the
    removal). ``sync_count`` is the dataset sync count of the batch that last wrote the
    record on the server (0: never synced). ``revision`` is a local counter bumped by every
    local write; the sync engine uses it to never overwrite an edit made during a sync.
    """

    key: str
    value: str | None
    sync_count: int = 0
    last_modified_date: datetime | None = None
    last_modified_by: str | None = None
    device_last_modified_date: datetime | None = None
    dirty: bool = False
    revision: int = 0

    def __init__(
        self,
        key: str,
        value: str | None,
        sync_count: int = 0,
        last_modified_date: datetime | None = None,
        last_modified_by: str | None = None,
        device_last_modified_date: datetime | None = None,
        dirty: bool = False,
        revision: int = 0,
    ) -> None:
        # What the dataclass's __init__ does, through the slots' own setters: it calls
        # object.__setattr__ by name per field (the class is frozen), ~2.5x slower, and a
        # full sync makes 20,000 records.
        set_key, set_value, set_count, set_modified, set_by, set_device, set_dirty, set_rev = (
            _RECORD_SETTERS
        )
        set_key(self, key)
        set_value(self, value)
        set_count(self, sync_count)
        set_modified(self, last_modified_date)
        set_by(self, last_modified_by)
        set_device(self, device_last_modified_date)
        set_dirty(self, dirty)
        set_rev(self, revision)


_RECORD_SETTERS = tuple(getattr(Record, f.name).__set__ for f in fields(Record))


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """A dataset's name, sync count, totals and last change: the fields every listing shows."""

    name: str
    sync_count: int
    size_in_bytes: int
    record_count: int
    last_modified: datetime | None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class DatasetMetadata(DatasetSummary):
    """What `Client.list_datasets` reports about a dataset."""


@dataclass(frozen=True, slots=True)
class DatasetState:
    """A dataset's local bookkeeping row.

    ``last_sync_count`` is the server sync count up to which every record is stored
    locally; ``deleted_pending`` means the app deleted the dataset and the deletion has
    not reached the server yet.
    """

    name: str
    last_sync_count: int = 0
    deleted_pending: bool = False
    last_modified: datetime | None = None


@dataclass(frozen=True, slots=True)
class RecordWrite:
    """One record write that a sync applies to the local store.

    The write happens only if the local record's ``revision`` still equals
    ``expected_revision`` (absent records have revision 0); None writes unconditionally.
    When the revision moved (the app edited the record during the sync), the local value
    and dirty flag are kept; if ``keep_sync_count_on_mismatch`` is set the record still
    adopts ``record.sync_count`` (used when acknowledging a push).

    ``base`` is, for a dirty ``record``, the value the server holds at
    ``record.sync_count`` (None: absent or removed): what a later three-way merge of the
    record starts from. A skipped write with ``keep_sync_count_on_mismatch`` takes
    ``record.value`` as the base instead (the value the server acknowledged).
    """

    record: Record
    expected_revision: int | None
    keep_sync_count_on_mismatch: bool = False
    base: str | None = None


class _SequenceValue(Sequence[_T]):
    """A sequence made on demand, equal (and hashing alike) to any sequence of the same
    items, as a tuple of them is."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def __hash__(self) -> int:
        return hash(tuple(self))


class SyncWrites(_SequenceValue[RecordWrite]):
    """The writes of one sync step: ``writes``, then each of ``pulled`` as
    ``RecordWrite(record, 0)`` (a clean pulled record for a key the device did not hold).

    Those are made only when asked for: a store reads ``pulled`` directly, so a pull of
    1,024 new records keeps no 1,024 `RecordWrite` objects alive. Equal to any sequence
    of the same writes.
    """

    __slots__ = ("pulled", "writes")

    def __init__(self, writes: Iterable[RecordWrite] = (), pulled: Iterable[Record] = ()) -> None:
        self.writes: tuple[RecordWrite, ...] = tuple(writes)
        self.pulled: Sequence[Record] = (
            pulled if isinstance(pulled, PulledRecords) else tuple(pulled)
        )

    def __len__(self) -> int:
        return len(self.writes) + len(self.pulled)

    @overload
    def __getitem__(self, index: int) -> RecordWrite: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[RecordWrite, ...]: ...
    def __getitem__(self, index: int | slice) -> RecordWrite | tuple[RecordWrite, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        size, first = len(self), len(self.writes)
        if not -size <= index < size:
            raise IndexError("sync write index out of range")
        index %= size
        return self.writes[index] if index < first else RecordWrite(self.pulled[index - first], 0)

    def __iter__(self) -> Iterator[RecordWrite]:
        yield from self.writes
        for record in self.pulled:
            yield RecordWrite(record, 0)

    def __repr__(self) -> str:
        return f"SyncWrites({self.writes!r}, pulled={self.pulled!r})"

    @staticmethod
    def parts(writes: Sequence[RecordWrite]) -> tuple[Sequence[RecordWrite], Sequence[Record]]:
        """``writes`` as (writes, pulled records written with expected revision 0)."""
        if isinstance(writes, SyncWrites):
            return writes.writes, writes.pulled
        return writes, ()


RecordRow = tuple[str, str | None, int, datetime | None, str | None, datetime | None]
"""A clean record's fields in `Record`'s order: key, value, sync_count, last_modified_date,
last_modified_by, device_last_modified_date."""


class _Rows(_SequenceValue[_T]):
    """Items held as tuples of their fields, each made only when asked for: tuples of
    strings, numbers and datetimes the garbage collector stops tracking at its first look,
    where the items themselves it would scan, and promote while they wait."""

    __slots__ = ("rows",)
    _make: ClassVar[Callable[..., Any]]

    def __init__(self, rows: Iterable[tuple[Any, ...]] = ()) -> None:
        self.rows: tuple[tuple[Any, ...], ...] = tuple(rows)

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> _T: ...
    @overload
    def __getitem__(self, index: slice) -> Self: ...
    def __getitem__(self, index: int | slice) -> _T | Self:
        if isinstance(index, slice):
            return type(self)(self.rows[index])
        item: _T = type(self)._make(*self.rows[index])
        return item

    def __iter__(self) -> Iterator[_T]:
        make = type(self)._make
        for row in self.rows:
            yield make(*row)

    def __eq__(self, other: object) -> bool:
        if type(other) is type(self):
            assert isinstance(other, _Rows)
            return self.rows == other.rows
        return _SequenceValue.__eq__(self, other)

    __hash__ = _SequenceValue.__hash__

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"


class PulledRecords(_Rows[Record]):
    """Clean records held as `RecordRow` tuples, each `Record` made only when asked for
    (a page of 1,024 pulled records is 1,024 tuples). Equal to any sequence of the same
    records."""

    __slots__ = ()
    _make = Record

    @classmethod
    def join(cls, parts: Iterable[Sequence[Record]]) -> PulledRecords:
        """The records of ``parts`` in order, as clean rows."""
        return cls(row for part in parts for row in record_rows(part))


class LocalRecords(Mapping[str, Record]):
    """Records by key, held as tuples of all of `Record`'s fields (``dirty`` and
    ``revision`` too), each `Record` made only when asked for: a push of 1,024 records
    reads them without keeping 1,024 objects for the collector while it waits."""

    __slots__ = ("rows",)

    def __init__(self, records: Iterable[Record] = ()) -> None:
        self.rows: dict[str, tuple[Any, ...]] = {
            r.key: (r.key, r.value, r.sync_count, r.last_modified_date, r.last_modified_by,
                    r.device_last_modified_date, r.dirty, r.revision)
            for r in records
        }  # fmt: skip

    def __getitem__(self, key: str) -> Record:
        return Record(*self.rows[key])

    def __contains__(self, key: object) -> bool:
        return key in self.rows

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"LocalRecords({dict(self)!r})"

    def dirty(self) -> tuple[list[RecordRow], dict[str, int]]:
        """The dirty records' `RecordRow`s in key order, and each one's revision."""
        rows = sorted(row[:6] for row in self.rows.values() if row[6])
        return rows, {row[0]: row[7] for row in self.rows.values() if row[6]}


def record_rows(records: Iterable[Record]) -> Sequence[RecordRow]:
    """The `RecordRow` of each record (their ``dirty`` and ``revision`` left out); the
    rows themselves for `PulledRecords`."""
    if isinstance(records, PulledRecords):
        return records.rows
    return [
        (r.key, r.value, r.sync_count, r.last_modified_date, r.last_modified_by,
         r.device_last_modified_date)
        for r in records
    ]  # fmt: skip


class PatchOp(StrEnum):
    """What a record patch does on the server."""

    REPLACE = "REPLACE"
    REMOVE = "REMOVE"


@dataclass(frozen=True, slots=True)
class RecordPatch:
    """One change in a push: ``sync_count`` is the record's count as the client last saw it."""

    op: PatchOp
    key: str
    value: str | None
    sync_count: int
    device_last_modified_date: datetime | None = None


PatchRow = tuple[str, str, str | None, int, datetime | None]
"""A patch's fields in `RecordPatch`'s order: op (its plain text: an enum member is an
object the collector tracks), key, value, sync_count, device_last_modified_date."""


def _record_patch(
    op: str, key: str, value: str | None, sync_count: int, device: datetime | None
) -> RecordPatch:
    return RecordPatch(PatchOp(op), key, value, sync_count, device)


class PatchRows(_Rows[RecordPatch]):
    """A push's patches held as `PatchRow` tuples, each `RecordPatch` made only when asked
    for (a push of 1,024 records holds no 1,024 objects while it waits for the server).
    Equal to any sequence of the same patches."""

    __slots__ = ()
    _make = _record_patch


def patch_rows(patches: Iterable[RecordPatch]) -> Sequence[PatchRow]:
    """The `PatchRow` of each patch; the rows themselves for `PatchRows`."""
    if isinstance(patches, PatchRows):
        return patches.rows
    return [
        (p.op.value, p.key, p.value, p.sync_count, p.device_last_modified_date) for p in patches
    ]


def _acknowledgement(
    key: str,
    value: str | None,
    sync_count: int,
    modified: datetime | None,
    by: str | None,
    device: datetime | None,
    expected_revision: int,
) -> RecordWrite:
    record = Record(key, value, sync_count, modified, by, device)
    return RecordWrite(record, expected_revision, keep_sync_count_on_mismatch=True)


class Acknowledgements(_Rows[RecordWrite]):
    """The writes marking pushed records clean, held as rows: a `RecordRow` of the server's
    record plus the local revision read for the push. Each is
    ``RecordWrite(Record(*row[:6]), row[6], keep_sync_count_on_mismatch=True)``, made only
    when asked for."""

    __slots__ = ()
    _make = _acknowledgement


@dataclass(frozen=True, slots=True)
class RemoteDataset(DatasetSummary):
    """A dataset as the server lists it."""


@dataclass(frozen=True, slots=True)
class RecordPage:
    """One page of a pull: records with sync_count in (since, up_to], plus dataset metadata."""

    dataset_name: str
    sync_count: int
    deleted: bool
    records: Sequence[Record]
    next_token: str | None
    merged_dataset_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PushResult:
    """The server's answer to an accepted push: the new dataset sync count and records."""

    dataset_name: str
    sync_count: int
    records: Sequence[Record]


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Protocol version and limits a server announces."""

    protocol_version: int
    max_datasets: int
    max_records: int
    max_dataset_bytes: int
    max_key_bytes: int


@dataclass(frozen=True, slots=True)
class Resolution:
    """How one conflict is settled: the value the record takes (None = removed)."""

    key: str
    value: str | None
    source: str  # "local", "remote" or "value"


@dataclass(frozen=True, slots=True)
class Conflict:
    """A record changed both locally (dirty) and on the server since the last sync.

    Attributes:
        key: the record's key.
        local: this device's version (dirty).
        remote: the server's version.
        base: the record as this device last synced it, which both sides changed: its
            ``value`` is None if the record was absent or removed then. None when unknown
            (an edit made before the device file recorded bases).
        path: for a conflict inside a JSON object value (see `cogsync.merge_json`), the
            object keys leading to the conflicting member; the versions' values are then
            that member's JSON (None where absent). Empty for a whole record.
    """

    key: str
    local: Record
    remote: Record
    base: Record | None = None
    path: tuple[str, ...] = ()

    def resolve_with_local_record(self) -> Resolution:
        """Keep this device's value (it will be pushed over the server's)."""
        return Resolution(self.key, self.local.value, "local")

    def resolve_with_remote_record(self) -> Resolution:
        """Take the server's value and drop the local edit."""
        return Resolution(self.key, self.remote.value, "remote")

    def resolve_with_value(self, value: str | None) -> Resolution:
        """Settle on a new value (e.g. a merge of both); None removes the record."""
        return Resolution(self.key, value, "value")


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one dataset's `synchronize` did."""

    dataset_name: str
    pulled: int = 0
    pushed: int = 0
    conflicts: tuple[Conflict, ...] = field(default_factory=tuple)
    sync_count: int = 0
    deleted: bool = False
    merged_dataset_names: tuple[str, ...] = ()
