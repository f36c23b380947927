"""Push sync scheduling: a change notification only schedules a debounced sync.

`PushScheduler` coalesces notifications per dataset; one that arrives while that dataset's
sync is running makes the sync run once more afterwards, so no change is ever dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from cogsync._tasks import cancel_and_wait

log = logging.getLogger(__name__)


class PushScheduler:
    """Runs ``sync(name)`` after ``debounce`` seconds for every dataset that was poked.

    Args:
        sync: the coroutine function that syncs one dataset.
        debounce: how long to wait for further notifications before syncing.
    """

    def __init__(self, sync: Callable[[str], Awaitable[None]], *, debounce: float = 0.05) -> None:
        self._sync = sync
        self._debounce = debounce
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()

    def poke(self, name: str) -> None:
        """Dataset ``name`` changed on the server: make sure a sync of it follows."""
        task = self._tasks.get(name)
        if task is not None and not task.done():
            self._again.add(name)
            return
        self._tasks[name] = asyncio.create_task(self._run(name))

    async def _run(self, name: str) -> None:
        while True:
            await asyncio.sleep(self._debounce)
            self._again.discard(name)
            try:
                await self._sync(name)
            except Exception:
                log.exception("push-triggered sync of %s failed", name)
            if name not in self._again:
                return

    async def close(self) -> None:
        """Cancel pending syncs and wait for them to end."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            await cancel_and_wait(task)
