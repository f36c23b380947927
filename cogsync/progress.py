"""Sync progress: `SyncProgress` values reported while a dataset syncs.

A `ProgressTracker` watches the commands the driver executes (it is a driver observer):
every page pulled and every batch pushed becomes one `SyncProgress`. The engine stays
unaware of it; the totals come from the server's dataset list (pull) and the dirty
records the sync read (push), and the last page pulled fixes the pull total.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from cogsync._callbacks import maybe_await
from cogsync.engine import commands
from cogsync.models import patch_rows, record_rows
from cogsync.remote.base import RemoteBackend

__all__ = ["OnProgress", "ProgressTracker", "SyncProgress", "chain", "progress_observer"]

Observer = Callable[[commands.Command[Any], Any], Any]


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """How far a dataset's sync has come.

    Attributes:
        dataset: the dataset's name.
        phase: ``"pull"`` (records from the server) or ``"push"`` (local changes sent).
        records_done: records of this phase done so far.
        records_total: records this phase is expected to handle (exact once it ends).
        bytes_done: UTF-8 bytes of the keys and values of the records done.
    """

    dataset: str
    phase: Literal["pull", "push"]
    records_done: int
    records_total: int
    bytes_done: int


OnProgress = Callable[[SyncProgress], Awaitable[None] | None]


def _size(key: str, value: str | None) -> int:
    return len(key.encode()) + (0 if value is None else len(value.encode()))


class ProgressTracker:
    """A driver observer that reports a `SyncProgress` per page pulled and batch pushed.

    Args:
        dataset: the dataset being synced.
        on_progress: called with each `SyncProgress` (plain or coroutine function).
        pull_total: the records the server holds for the dataset, if known.
    """

    def __init__(self, dataset: str, on_progress: OnProgress, pull_total: int = 0) -> None:
        self._dataset = dataset
        self._on_progress = on_progress
        self._pull = [0, pull_total, 0]  # done, total, bytes
        self._push = [0, 0, 0]
        self._push_total_known = False

    async def __call__(self, command: commands.Command[Any], result: Any) -> None:
        if isinstance(command, commands.ReadLocal) and not self._push_total_known:
            self._push[1] = sum(1 for r in result.records.values() if r.dirty)
            self._push_total_known = True
        elif isinstance(command, commands.ListRecords):
            done, total, size = self._pull
            done += len(result.records)
            size += sum(_size(row[0], row[1]) for row in record_rows(result.records))
            total = done if result.next_token is None else max(total, done)
            self._pull = [done, total, size]
            await self._report("pull", self._pull)
        elif isinstance(command, commands.PushRecords):
            done, total, size = self._push
            done += len(command.patches)
            size += sum(_size(row[1], row[2]) for row in patch_rows(command.patches))
            self._push = [done, max(total, done), size]
            await self._report("push", self._push)

    async def _report(self, phase: Literal["pull", "push"], numbers: list[int]) -> None:
        done, total, size = numbers
        await maybe_await(self._on_progress(SyncProgress(self._dataset, phase, done, total, size)))


def chain(*observers: Observer) -> Observer:
    """One observer that calls each of ``observers`` in turn."""

    async def observe(command: commands.Command[Any], result: Any) -> None:
        for observer in observers:
            await maybe_await(observer(command, result))

    return observe


async def progress_observer(
    dataset: str, on_progress: OnProgress, backend: RemoteBackend
) -> ProgressTracker:
    """A `ProgressTracker` whose pull total is the server's record count of ``dataset``."""
    total = next((d.record_count for d in await backend.list_datasets() if d.name == dataset), 0)
    return ProgressTracker(dataset, on_progress, total)
