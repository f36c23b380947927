"""`sync_concurrently` names the datasets next in line to fetch ahead, in order, once each."""

from __future__ import annotations

import asyncio

from cogsync.models import SyncResult
from cogsync.sync_all import SyncAllPlan, pages_ahead, sync_concurrently


async def test_each_start_names_the_dataset_width_places_further() -> None:
    events: list[str] = []

    async def sync(name: str) -> SyncResult:
        events.append(f"start {name}")
        await asyncio.sleep(0.01 if name != "b" else 0.05)
        return SyncResult(name)

    names = ["a", "b", "s", "c", "d", "e"]
    settled = {"s": SyncResult("s")}
    results = await sync_concurrently(
        names, sync, 2, settled, lambda name: events.append(f"ahead {name}")
    )
    assert list(results) == names
    aheads = [e for e in events if e.startswith("ahead")]
    assert aheads == ["ahead c", "ahead d", "ahead e"]
    for name in "cde":  # each is named before it starts
        assert events.index(f"ahead {name}") < events.index(f"start {name}")


class _Backend:
    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    def fetch_ahead(self, dataset_name: str, last_sync_count: int) -> None:
        self.asked.append((dataset_name, last_sync_count))

    def drop_ahead(self) -> None:
        pass


def test_only_datasets_that_start_with_a_pull_are_fetched_ahead() -> None:
    backend = _Backend()
    plan = SyncAllPlan(("a", "gone", "b"), {}, {"a": 0, "b": 7})
    ahead = pages_ahead(backend, plan)
    assert ahead is not None
    for name in plan.names:
        ahead(name)
    assert backend.asked == [("a", 0), ("b", 7)]
    assert pages_ahead(object(), plan) is None
