"""The store's single writer: one worker thread that runs every blocking store call.

SQLite never blocks the event loop: the client, its identity and its datasets hand each
store call to `StoreThread.run` and await the result.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from cogsync.exceptions import UsageError

__all__ = ["RunBlocking", "StoreThread"]

T = TypeVar("T")


class RunBlocking(Protocol):
    """Runs a blocking store call off the event loop: ``await run(fn, *args)``."""

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T: ...


class StoreThread:
    """One worker thread for a store; refuses calls once the store is closed."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cogsync-store")
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether `close_store` ran (no further calls are accepted)."""
        return self._closed

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the worker thread."""
        if self._closed:
            raise UsageError("this client is closed; create a new one")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def close_store(self, close: Callable[[], None]) -> None:
        """Refuse further calls and run ``close`` (the store's) as the last call."""
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, close)

    def shutdown(self) -> None:
        """Wait for the worker thread to end."""
        self._executor.shutdown(wait=True)
