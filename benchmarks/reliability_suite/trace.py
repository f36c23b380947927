"""A scenario's trace: what its devices, their links and the server did, in order.

Timing-dependent failures rarely come back when a scenario is replayed alone, so every
scenario notes its steps as it runs (writes with the record revision they left, syncs and
their outcome, every pull and push with its request id, faults, restarts) and a scenario
that loses or duplicates a write reports its trace with the failure.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from cogsync.models import PushResult, Record, RecordPage, RecordPatch, RemoteDataset, ServerInfo
from cogsync.remote.base import RemoteBackend

__all__ = ["RecordingBackend", "Trace"]

_LIMIT = 400  # lines kept per scenario (a scenario normally notes a few dozen)


class Trace:
    """Timestamped lines, relative to the trace's creation."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.lines: list[str] = []

    def note(self, who: str, what: str) -> None:
        """Add ``what`` done by ``who`` (a device, a link, the server)."""
        if len(self.lines) < _LIMIT:
            self.lines.append(f"{time.monotonic() - self.started:8.3f} {who:<6} {what}")

    def text(self, title: str) -> str:
        """The trace as one block headed by ``title``."""
        return "\n".join([title, *(f"    {line}" for line in self.lines)])


def _records(records: Sequence[Record]) -> str:
    return ", ".join(f"{r.key}={r.value!r}@{r.sync_count}" for r in records) or "-"


def _patches(patches: Sequence[RecordPatch]) -> str:
    return ", ".join(f"{p.key}={p.value!r}@{p.sync_count}" for p in patches)


class RecordingBackend:
    """A `RemoteBackend` noting every push it sends (request id -> patches) and tracing
    each remote call of device ``who`` with its outcome."""

    def __init__(
        self,
        inner: RemoteBackend,
        sent: dict[str, Sequence[RecordPatch]],
        trace: Trace,
        who: str,
    ) -> None:
        self.inner, self.sent, self.trace, self.who = inner, sent, trace, who

    async def server_info(self) -> ServerInfo:
        return await self.inner.server_info()

    async def list_datasets(self) -> list[RemoteDataset]:
        return await self.inner.list_datasets()

    async def list_records(
        self, dataset_name: str, last_sync_count: int, next_token: str | None = None
    ) -> RecordPage:
        try:
            page = await self.inner.list_records(dataset_name, last_sync_count, next_token)
        except BaseException as exc:
            self.trace.note(self.who, f"pull since {last_sync_count} failed: {exc!r:.80}")
            raise
        self.trace.note(
            self.who,
            f"pull since {last_sync_count} -> {page.sync_count}"
            f"{' deleted' if page.deleted else ''}: {_records(page.records)}",
        )
        return page

    async def push_records(
        self,
        dataset_name: str,
        patches: Sequence[RecordPatch],
        *,
        client_request_id: str,
        device_id: str,
    ) -> PushResult:
        self.sent[client_request_id] = tuple(patches)
        rid = client_request_id[:8]
        self.trace.note(self.who, f"push {rid} {_patches(patches)}")
        try:
            result = await self.inner.push_records(
                dataset_name, patches, client_request_id=client_request_id, device_id=device_id
            )
        except BaseException as exc:
            self.trace.note(self.who, f"push {rid} failed: {exc!r:.80}")
            raise
        self.trace.note(self.who, f"push {rid} -> {result.sync_count}: {_records(result.records)}")
        return result

    async def delete_dataset(self, dataset_name: str, *, client_request_id: str) -> int:
        self.trace.note(self.who, f"delete dataset {client_request_id[:8]}")
        return await self.inner.delete_dataset(dataset_name, client_request_id=client_request_id)

    async def close(self) -> None:
        await self.inner.close()
