"""What `cogsync migrate` writes to: the `Target` protocol every destination implements.

A target imports one dataset at a time (all-or-nothing, idempotent) and reads datasets back
as `TargetDataset` for ``--verify``. A target with its own identity service (`cogsync
serve`) also implements `DeveloperLoginTarget`: it takes over the pool's developer logins.
The destinations are `cogsync.migrate.serve` (a `cogsync serve` server) and
`cogsync.migrate.dynamodb` (a ``server_schema`` stack's table).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from cogsync._awsdatetime import as_utc, format_datetime
from cogsync.migrate.source import SourceRecords

__all__ = ["DeveloperLoginTarget", "Target", "TargetDataset", "datetime_text"]


@dataclass(frozen=True, slots=True)
class TargetDataset:
    """A dataset as the target holds it: sync count and every (key, value), tombstones too."""

    exists: bool
    sync_count: int
    pairs: tuple[tuple[str, str | None], ...]


class Target(Protocol):
    """What `cogsync migrate` needs from a destination."""

    description: str

    def import_dataset(
        self, identity_id: str, name: str, data: SourceRecords, *, deleted: bool = False
    ) -> int:
        """Write a dataset's records (all-or-nothing, idempotent); return how many changed."""
        ...

    def export_dataset(self, identity_id: str, name: str) -> TargetDataset:
        """Read a dataset back for verification."""
        ...


@runtime_checkable
class DeveloperLoginTarget(Protocol):
    """A target that links developer user ids to identities (its own developer provider)."""

    def import_developer_logins(self, identity_id: str, users: list[str]) -> str:
        """Link ``users`` to the identity (all-or-nothing, idempotent); return the provider."""
        ...

    def export_developer_logins(self, identity_id: str) -> list[str]:
        """The developer user ids linked to the identity, sorted (for verification)."""
        ...


def datetime_text(value: datetime | None) -> str | None:
    """A source date as ``AWSDateTime`` text (a naive date is UTC); None stays None."""
    return None if value is None else format_datetime(as_utc(value))
