"""The commands the sync flow yields, and what the driver sends back for each.

`cogsync.engine.flow.sync_dataset` is a generator: it yields one of these frozen
dataclasses and receives the result named in the class docstring (or has the command's
failure thrown into it). A driver (`cogsync.driver.run_sync`, or a test by hand)
executes them: store commands against a `LocalStore`, remote commands against a
`RemoteBackend`, callback commands by asking the app.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cogsync.models import (
    Conflict,
    DatasetState,
    PushResult,
    Record,
    RecordPage,
    RecordPatch,
    RecordWrite,
    Resolution,
)

__all__ = [
    "ApplySync",
    "Command",
    "DatasetDeleted",
    "DatasetsMerged",
    "DeleteRemote",
    "DropDataset",
    "ListRecords",
    "LocalSnapshot",
    "NewRequestId",
    "PushRecords",
    "ReadLocal",
    "ResolveConflicts",
]

T = TypeVar("T")


class Command(Generic[T]):
    """Base of every command; ``T`` is the type of the result the driver sends back."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class LocalSnapshot:
    """A dataset as stored locally: its bookkeeping row (None if absent) and its records.

    ``records`` holds every record (tombstones included) when ``complete``; otherwise only
    the dirty ones and those asked for by key (see `ReadLocal`). ``bases`` maps the key of
    each dirty record whose base is known to that base: the value the server held when the
    edit began (None: absent), see `LocalStore.get_bases`.
    """

    state: DatasetState | None
    records: Mapping[str, Record] = field(default_factory=dict)
    bases: Mapping[str, str | None] = field(default_factory=dict)
    complete: bool = True


# ---- local store -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReadLocal(Command[LocalSnapshot]):
    """Read the dataset's state, records (tombstones included) and bases -> `LocalSnapshot`.

    ``only``: None reads every record; a set of keys reads just the records among those
    keys plus every dirty record (a sync touches no others), and the snapshot says it is
    not ``complete``. A driver may always answer with every record.

    ``for_push``: the snapshot a push is built from. In the same store transaction, its
    never-synced dirty records are noted as sent (`LocalStore.mark_sent`), so a record the
    app removes once it was read leaves a tombstone: the push may reach the server even if
    its answer never comes back.
    """

    dataset: str
    only: frozenset[str] | None = None
    for_push: bool = False


@dataclass(frozen=True, slots=True)
class ApplySync(Command[list[str]]):
    """One `LocalStore.apply_sync` transaction -> the keys skipped by revision guards."""

    dataset: str
    writes: Sequence[RecordWrite] = ()
    last_sync_count: int | None = None
    clear_deleted_pending: bool = False
    reset_sync_counts: bool = False


@dataclass(frozen=True, slots=True)
class DropDataset(Command[None]):
    """Forget the dataset locally (records and bookkeeping) -> None."""

    dataset: str


# ---- remote backend ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ListRecords(Command[RecordPage]):
    """Fetch one page of records with sync_count > ``since`` -> `RecordPage`."""

    dataset: str
    since: int
    next_token: str | None = None


@dataclass(frozen=True, slots=True)
class PushRecords(Command[PushResult]):
    """Push one batch -> `PushResult`, or `ConflictError` thrown into the flow.

    Re-executing the same command (same ``client_request_id``) after a network failure
    is safe: the server applies a request id at most once.
    """

    dataset: str
    patches: Sequence[RecordPatch]
    client_request_id: str
    device_id: str


@dataclass(frozen=True, slots=True)
class DeleteRemote(Command[int]):
    """Delete the dataset on the server -> its new sync count."""

    dataset: str
    client_request_id: str


@dataclass(frozen=True, slots=True)
class NewRequestId(Command[str]):
    """Make a fresh, globally unique client request id -> str."""


# ---- app callbacks -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ResolveConflicts(Command[list[Resolution]]):
    """Ask the app's ``on_conflict`` -> one `Resolution` per conflict (validated by the flow)."""

    dataset: str
    conflicts: tuple[Conflict, ...]


@dataclass(frozen=True, slots=True)
class DatasetDeleted(Command[bool]):
    """The server deleted the dataset; ask ``on_dataset_deleted`` -> True to drop the local copy.

    ``unsynced_changes`` tells a driver without a callback what to default to: follow the
    deletion unless this device holds edits the server never saw.
    """

    dataset: str
    unsynced_changes: bool


@dataclass(frozen=True, slots=True)
class DatasetsMerged(Command[bool]):
    """The server reports datasets merged into this identity -> True to continue the sync."""

    dataset: str
    merged_names: tuple[str, ...]
