"""A private event-loop thread that lets blocking code call the async core.

`Client` and `Dataset` are thin facades: every method submits a coroutine of the
`AsyncClient` to this portal and waits for its result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from cogsync.exceptions import UsageError

T = TypeVar("T")


class Portal:
    """Runs coroutines on an event loop owned by a daemon thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="cogsync-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's event loop."""
        return self._loop

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the portal's loop and return its result (blocking)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise UsageError(
                "cogsync.Client blocks; it cannot be called from inside a running event loop. "
                "Use cogsync.AsyncClient in async code."
            )
        if not self._thread.is_alive():
            coro.close()
            raise UsageError("this client is closed; create a new one")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        """Stop the loop and join its thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()
