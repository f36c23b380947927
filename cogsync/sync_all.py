"""What `AsyncClient.synchronize_all` syncs, and how it runs them side by side.

`plan_sync_all` compares the server's dataset list with the local bookkeeping (on the store
thread) and names the datasets a sync could not change, so only the others cost requests;
`sync_concurrently` runs the syncs with bounded concurrency and gathers every failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from cogsync.exceptions import SyncAllError
from cogsync.models import DatasetSummary, SyncResult
from cogsync.store.base import LocalStore

__all__ = ["SyncAllPlan", "plan_sync_all", "sync_concurrently"]


@dataclass(frozen=True, slots=True)
class SyncAllPlan:
    """Every local dataset (``names``), those already settled (name -> sync count), and
    those the server does not list at all, nor any dataset merged into them (``unknown``)."""

    names: tuple[str, ...]
    settled: dict[str, int]
    unknown: frozenset[str] = frozenset()


def plan_sync_all(owner: str, store: LocalStore, remote: Sequence[DatasetSummary]) -> SyncAllPlan:
    """The local datasets of ``owner`` and which of them need no sync (store thread).

    A dataset is settled when the server lists it, not deleted, at exactly the sync count
    this device last stored, no dataset merged into it (``<name>.<identity id>``) is
    listed, and locally it has no dirty record and no pending deletion. Any other dataset
    (unknown to the server, deleted or merged there, changed on either side) is synced.
    """
    listed = {d.name: d for d in remote}
    states = store.list_datasets(owner)
    settled: dict[str, int] = {}
    unknown: set[str] = set()
    for state in states:
        server = listed.get(state.name)
        prefix = state.name + "."
        merged = any(name.startswith(prefix) for name in listed)
        if server is None and not merged:
            unknown.add(state.name)
        if (
            server is None
            or server.deleted
            or state.deleted_pending
            or server.sync_count != state.last_sync_count
        ):
            continue
        if merged:
            continue  # a dataset merged into this one: the sync reports it
        if store.dirty_records(owner, state.name):
            continue
        settled[state.name] = server.sync_count
    return SyncAllPlan(tuple(s.name for s in states), settled, frozenset(unknown))


async def sync_concurrently(
    names: Sequence[str],
    sync: Callable[[str], Awaitable[SyncResult]],
    concurrency: int,
    settled: Mapping[str, SyncResult] | None = None,
) -> dict[str, SyncResult]:
    """``sync(name)`` for every name not ``settled``, up to ``concurrency`` at once.

    Returns name -> result (the ``settled`` ones as given) in the order of ``names``. Every
    name is tried; failures end in one `SyncAllError` (an instance of the first failure's
    class) carrying the results and the errors.
    """
    results: dict[str, SyncResult] = dict(settled or {})
    errors: dict[str, Exception] = {}
    slots = asyncio.Semaphore(max(1, concurrency))

    async def one(name: str) -> None:
        async with slots:
            try:
                results[name] = await sync(name)
            except Exception as exc:  # every dataset is tried; errors are reported below
                errors[name] = exc

    await asyncio.gather(*(one(name) for name in names if name not in results))
    results = {name: results[name] for name in names if name in results}
    if errors:
        errors = {name: errors[name] for name in names if name in errors}
        first = next(iter(errors.values()))
        raise SyncAllError.from_failures(results, errors) from first
    return results
