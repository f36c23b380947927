"""A shared/exclusive gate for asyncio: many syncs at once, or one identity change alone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Gate:
    """Syncs enter shared; login, wipe and close enter exclusive (waiting for syncs to end)."""

    def __init__(self) -> None:
        self._shared = 0
        self._exclusive = False
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        """Hold the gate together with other shared holders."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            async with self._changed:
                self._shared -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold the gate alone."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._exclusive)
            self._exclusive = True
            try:
                await self._changed.wait_for(lambda: self._shared == 0)
            except BaseException:  # cancelled while waiting: give the gate back
                self._exclusive = False
                self._changed.notify_all()
                raise
        try:
            yield
        finally:
            async with self._changed:
                self._exclusive = False
                self._changed.notify_all()
