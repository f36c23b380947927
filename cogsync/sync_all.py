"""What `AsyncClient.synchronize_all` syncs, and how it runs them side by side.

`plan_sync_all` compares the server's dataset list with the local bookkeeping (on the store
thread) and names the datasets a sync could not change, so only the others cost requests;
`sync_concurrently` runs the syncs with bounded concurrency and gathers every failure.
While syncs run, the first pages of the datasets next in line are fetched ahead (from a
backend that can: `FetchesAhead`), so the server and the network work while this device
stores what it pulled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cogsync.exceptions import SyncAllError
from cogsync.models import DatasetSummary, SyncResult
from cogsync.store.base import LocalStore

__all__ = [
    "FetchesAhead",
    "SyncAllPlan",
    "pages_ahead",
    "plan_sync_all",
    "run_sync_all",
    "sync_concurrently",
]


@runtime_checkable
class FetchesAhead(Protocol):
    """A backend that can fetch a first page of records before a sync asks for it."""

    def fetch_ahead(self, dataset_name: str, last_sync_count: int) -> None: ...

    def drop_ahead(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SyncAllPlan:
    """Every local dataset (``names``), those already settled (name -> sync count), and
    where the pull of each other one starts (``pulls``: name -> last sync count; not for
    a dataset whose sync first deletes it on the server, nor for one the server does not
    know), and those the server does not list at all, nor any dataset merged into them
    (``unknown``: their sync pushes without a first pull)."""

    names: tuple[str, ...]
    settled: dict[str, int]
    pulls: dict[str, int] = field(default_factory=dict)
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
    pulls = {s.name: s.last_sync_count for s in states if not s.deleted_pending}
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
        del pulls[state.name]
    for name in unknown:
        pulls.pop(name, None)
    return SyncAllPlan(tuple(s.name for s in states), settled, pulls, frozenset(unknown))


def pages_ahead(backend: object, plan: SyncAllPlan) -> Callable[[str], None] | None:
    """The ``ahead`` of `sync_concurrently`: fetch the first page of a dataset ``plan``
    pulls, from ``backend`` (None if it cannot)."""
    if not isinstance(backend, FetchesAhead):
        return None
    fetch, pulls = backend.fetch_ahead, plan.pulls

    def ahead(name: str) -> None:
        if name in pulls:
            fetch(name, pulls[name])

    return ahead


async def sync_concurrently(
    names: Sequence[str],
    sync: Callable[[str], Awaitable[SyncResult]],
    concurrency: int,
    settled: Mapping[str, SyncResult] | None = None,
    ahead: Callable[[str], None] | None = None,
) -> dict[str, SyncResult]:
    """``sync(name)`` for every name not ``settled``, up to ``concurrency`` at once.

    As each sync starts, ``ahead(name)`` is told the name ``concurrency`` places further in
    line (the first syncs tell the first of those), so its first page can be fetched early.
    Returns name -> result (the ``settled`` ones as given) in the order of ``names``. Every
    name is tried; failures end in one `SyncAllError` (an instance of the first failure's
    class) carrying the results and the errors.
    """
    results: dict[str, SyncResult] = dict(settled or {})
    errors: dict[str, Exception] = {}
    width = max(1, concurrency)
    slots = asyncio.Semaphore(width)
    line = [name for name in names if name not in results]

    async def one(place: int, name: str) -> None:
        async with slots:
            if ahead is not None and place + width < len(line):
                ahead(line[place + width])
            try:
                results[name] = await sync(name)
            except Exception as exc:  # every dataset is tried; errors are reported below
                errors[name] = exc

    await asyncio.gather(*(one(place, name) for place, name in enumerate(line)))
    results = {name: results[name] for name in names if name in results}
    if errors:
        errors = {name: errors[name] for name in names if name in errors}
        first = next(iter(errors.values()))
        raise SyncAllError.from_failures(results, errors) from first
    return results


async def run_sync_all(
    plan: SyncAllPlan,
    sync: Callable[[str], Awaitable[SyncResult]],
    concurrency: int,
    backend: object,
) -> dict[str, SyncResult]:
    """`sync_concurrently` over ``plan`` (its settled datasets answered as they are), the
    first pages fetched ahead from ``backend`` if it can; pages not taken are dropped."""
    try:
        return await sync_concurrently(
            plan.names,
            sync,
            concurrency,
            {name: SyncResult(name, sync_count=n) for name, n in plan.settled.items()},
            pages_ahead(backend, plan),
        )
    finally:
        if isinstance(backend, FetchesAhead):
            backend.drop_ahead()
