"""`cancel_and_wait`: end a background task for sure, even if it swallows a cancellation."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` until it ends, then wait for it (its cancellation is not re-raised).

    On Python 3.11 `asyncio.wait_for`, used by the transports, can swallow a cancellation
    that races its inner future; a loop that reconnects or retries would then run on with
    nobody left to stop it, so the cancellation is repeated until the task is done.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    with contextlib.suppress(asyncio.CancelledError):
        await task
