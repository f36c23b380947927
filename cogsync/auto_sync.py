"""Background sync: `AutoSync` decides when a client's datasets sync by themselves.

A local write schedules a sync of its dataset after ``debounce`` seconds without further
writes (a burst coalesces into one sync); a push notification schedules one at once; every
``interval`` seconds all datasets sync. When the server is unreachable, one recovery task
tries again after capped, jittered delays and syncs everything as soon as it answers. Each
dataset has at most one scheduled task, so at most one sync of it runs at a time. Closing
cancels what is only waiting and lets a running sync finish: a write is never lost (it is
durable locally and stays dirty until a sync pushes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterator
from typing import Any

from cogsync._backoff import backoff_delays
from cogsync.exceptions import CogsyncError, OfflineError, SyncAllError
from cogsync.models import SyncResult

__all__ = ["AutoSync", "sync_each"]

log = logging.getLogger(__name__)


class AutoSync:
    """Schedules syncs of one client's datasets.

    Args:
        sync_one: syncs one dataset (the client's `synchronize` with the app's callbacks).
        sync_all: syncs every dataset this auto sync covers.
        debounce: seconds without writes before a written dataset syncs.
        interval: seconds between two syncs of everything.
        datasets: the names covered; None covers all.
        delays: makes a fresh iterator of retry delays while offline.
    """

    def __init__(
        self,
        sync_one: Callable[[str], Awaitable[Any]],
        sync_all: Callable[[], Awaitable[Any]],
        *,
        debounce: float = 1.0,
        interval: float = 300.0,
        datasets: Collection[str] | None = None,
        delays: Callable[[], Iterator[float]] = lambda: backoff_delays(maximum=30.0),
    ) -> None:
        if debounce < 0 or interval <= 0:
            raise ValueError("auto sync needs debounce >= 0 and interval > 0")
        self._sync_one = sync_one
        self._sync_all = sync_all
        self._debounce = debounce
        self._interval = interval
        self.datasets = None if datasets is None else frozenset(datasets)
        self._delays = delays
        self._due: dict[str, float] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._busy: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._connect: asyncio.Task[None] | None = None
        self._closed = False

    def covers(self, name: str) -> bool:
        """Whether dataset ``name`` syncs in the background."""
        return self.datasets is None or name in self.datasets

    def start(
        self,
        connect: Callable[[], Awaitable[None]] | None = None,
        *,
        on_offline: Callable[[], None] | None = None,
    ) -> None:
        """Start the interval timer and, if given, ``connect`` (start push sync) until it
        succeeds, calling ``on_offline`` after each attempt that found the server away."""
        loop = asyncio.get_running_loop()
        if self._ticker is None:
            self._ticker = loop.create_task(self._tick(), name="cogsync-auto-sync-interval")
        if connect is not None and self._connect is None:
            self._connect = loop.create_task(
                self._keep_connecting(connect, on_offline), name="cogsync-auto-sync-connect"
            )

    async def _keep_connecting(
        self, connect: Callable[[], Awaitable[None]], on_offline: Callable[[], None] | None
    ) -> None:
        for delay in self._delays():
            try:
                await connect()
                return
            except OfflineError:
                if on_offline is not None:
                    on_offline()
            except CogsyncError as exc:  # no push (e.g. local-only): interval syncs only
                log.warning("auto sync runs without push notifications: %s", exc)
                await self.sync_everything()
                return
            await asyncio.sleep(delay)

    def written(self, name: str) -> None:
        """Dataset ``name`` was written here: sync it once writes pause for ``debounce``."""
        self._schedule(name, self._debounce)

    def poked(self, name: str) -> None:
        """Dataset ``name`` changed on the server: sync it now (or when its writes pause)."""
        self._schedule(name, 0.0, extend=False)

    def _schedule(self, name: str, delay: float, *, extend: bool = True) -> None:
        if self._closed or not self.covers(name):
            return
        due = time.monotonic() + delay
        self._due[name] = due if extend else max(due, self._due.get(name, 0.0))
        task = self._tasks.get(name)
        if task is not None and not task.done():
            if task in self._busy:
                self._again.add(name)
            return
        self._tasks[name] = asyncio.get_running_loop().create_task(
            self._run(name), name=f"cogsync-auto-sync-{name}"
        )

    async def _run(self, name: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        while not self._closed:
            wait = self._due.get(name, 0.0) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._again.discard(name)
            await self._guarded(task, self._sync_one(name), f"background sync of {name}")
            if name not in self._again:
                return

    async def _tick(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._interval)
            await self.sync_everything()

    async def sync_everything(self) -> None:
        """Sync every covered dataset now (after a reconnect, on the interval)."""
        task = asyncio.current_task()
        assert task is not None
        await self._guarded(task, self._sync_all(), "background sync of every dataset")

    async def _guarded(self, task: asyncio.Task[Any], work: Awaitable[Any], what: str) -> None:
        self._busy.add(task)
        try:
            await work
        except OfflineError as exc:
            log.info("%s: offline (%s); retrying with backoff", what, exc)
            self._start_recovery()
        except Exception:
            log.exception("%s failed", what)
        finally:
            self._busy.discard(task)

    def _start_recovery(self) -> None:
        if self._closed or (self._recovery is not None and not self._recovery.done()):
            return
        self._recovery = asyncio.get_running_loop().create_task(
            self._recover(), name="cogsync-auto-sync-recovery"
        )

    async def _recover(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        for delay in self._delays():
            await asyncio.sleep(delay)
            if self._closed:
                return
            self._busy.add(task)
            try:
                await self._sync_all()
            except OfflineError:
                continue
            except Exception:
                log.exception("background sync after reconnecting failed")
            finally:
                self._busy.discard(task)
            return

    async def close(self) -> bool:
        """Stop scheduling; cancel waiting tasks, let running syncs finish.

        Returns:
            True if `start` was given ``connect`` (the caller undoes what it started).
        """
        self._closed = True
        tasks = [*self._tasks.values(), self._ticker, self._recovery, self._connect]
        self._tasks.clear()
        for task in tasks:
            if task is not None and task not in self._busy:
                task.cancel()
        for task in tasks:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return self._connect is not None


async def sync_each(
    names: Collection[str], sync: Callable[[str], Awaitable[SyncResult]]
) -> dict[str, SyncResult]:
    """``sync(name)`` for every name in order; failures end in one `SyncAllError` after all
    were tried (an instance of the first failure's class, as from `synchronize_all`)."""
    results: dict[str, SyncResult] = {}
    errors: dict[str, Exception] = {}
    for name in sorted(names):
        try:
            results[name] = await sync(name)
        except Exception as exc:  # every dataset is tried; errors are reported together
            errors[name] = exc
    if errors:
        raise SyncAllError.from_failures(results, errors) from next(iter(errors.values()))
    return results
