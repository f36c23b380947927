"""The `RemoteBackend` protocol: the sync protocol of ``server_schema/schema.graphql``.

Implementations translate their transport's failures at this boundary: unreachable
server -> `OfflineError`, refused credentials -> `NotAuthorizedError`, stale sync count
-> `ConflictError` (with key/current/expected), limits -> `LimitExceededError`
subclasses, anything else -> `ServerError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cogsync.models import PushResult, RecordPage, RecordPatch, RemoteDataset, ServerInfo

__all__ = ["RemoteBackend"]


class RemoteBackend(Protocol):
    """One identity's view of the server (the identity comes from the credentials)."""

    async def server_info(self) -> ServerInfo:
        """Protocol version and limits."""
        ...

    async def list_datasets(self) -> list[RemoteDataset]:
        """All datasets of the caller, including deleted ones (tombstones)."""
        ...

    async def list_records(
        self, dataset_name: str, last_sync_count: int, next_token: str | None = None
    ) -> RecordPage:
        """One page of records with sync_count > last_sync_count (tombstones included)."""
        ...

    async def push_records(
        self,
        dataset_name: str,
        patches: Sequence[RecordPatch],
        *,
        client_request_id: str,
        device_id: str,
    ) -> PushResult:
        """Apply ``patches`` all-or-nothing; a retried request id returns the first result."""
        ...

    async def delete_dataset(self, dataset_name: str, *, client_request_id: str) -> int:
        """Delete a dataset (kept as a tombstone); return its new sync count."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
