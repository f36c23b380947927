"""Change events and the listeners that receive them.

A `ChangeEvent` says which keys of which dataset changed and where the change came from:
``"local"`` (this client wrote), ``"remote"`` (a sync applied server records) or
``"process"`` (another process wrote the same device file). `Listeners` fans a value out to
callbacks and async iterators; a callback's failure is logged and never reaches the writer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from cogsync._callbacks import maybe_await

__all__ = ["ChangeEvent", "ChangeStream", "Listeners", "Origin", "Subscription"]

log = logging.getLogger(__name__)
T = TypeVar("T")
Origin = Literal["local", "remote", "process"]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """Keys of a dataset that changed.

    Attributes:
        dataset: the dataset's name.
        keys: the changed keys, sorted (empty when a whole dataset was dropped).
        origin: ``"local"``, ``"remote"`` or ``"process"``.
    """

    dataset: str
    keys: tuple[str, ...]
    origin: Origin


class Subscription:
    """A registered callback; `cancel` stops further calls (idempotent)."""

    def __init__(self, cancel: Callable[[], None]) -> None:
        self._cancel: Callable[[], None] | None = cancel

    def cancel(self) -> None:
        """Stop calling the callback."""
        cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel()

    @property
    def cancelled(self) -> bool:
        """True once `cancel` was called."""
        return self._cancel is None


_END: Any = object()


class ChangeStream(Generic[T]):
    """An async iterator over values emitted after it was created; ends when its source closes."""

    def __init__(self, owner: Listeners[T]) -> None:
        self._queue: asyncio.Queue[T] = asyncio.Queue()
        self._owner = owner
        self._done = False

    def __aiter__(self) -> ChangeStream[T]:
        return self

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        value = await self._queue.get()
        if value is _END:
            self._done = True
            raise StopAsyncIteration
        return value

    def put(self, value: T) -> None:
        """Queue ``value`` (called by the source)."""
        self._queue.put_nowait(value)

    async def aclose(self) -> None:
        """Stop receiving values."""
        self._owner.discard_stream(self)
        self._done = True


class Listeners(Generic[T]):
    """Callbacks and streams that receive each emitted value, in emission order.

    `emit` never waits for a callback: values are queued and one task calls the callbacks
    in order, so a slow callback delays only later callbacks, never the writer.
    """

    def __init__(self) -> None:
        self._callbacks: dict[int, Callable[[T], Any]] = {}
        self._streams: list[ChangeStream[T]] = []
        self._next = 0
        self._pending: asyncio.Queue[T] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def __bool__(self) -> bool:
        return bool(self._callbacks or self._streams)

    def add(self, callback: Callable[[T], Any]) -> Subscription:
        """Call ``callback(value)`` for every value emitted until cancelled."""
        key, self._next = self._next, self._next + 1
        self._callbacks[key] = callback
        return Subscription(lambda: self._forget(key))

    def _forget(self, key: int) -> None:
        self._callbacks.pop(key, None)

    def stream(self) -> ChangeStream[T]:
        """A new async iterator over the values emitted from now on."""
        stream = ChangeStream(self)
        self._streams.append(stream)
        return stream

    def discard_stream(self, stream: ChangeStream[T]) -> None:
        """Forget ``stream`` (it stops receiving values)."""
        if stream in self._streams:
            self._streams.remove(stream)

    def emit(self, value: T) -> None:
        """Hand ``value`` to every stream now and to every callback soon (call on the loop)."""
        for stream in list(self._streams):
            stream.put(value)
        if not self._callbacks:
            return
        self._pending.put_nowait(value)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._dispatch(), name="cogsync-listeners"
            )

    async def _dispatch(self) -> None:
        while not self._pending.empty():
            value = self._pending.get_nowait()
            for callback in list(self._callbacks.values()):
                try:
                    await maybe_await(callback(value))
                except Exception:
                    log.exception("a cogsync listener failed")

    async def aclose(self) -> None:
        """Deliver what was emitted, then end every stream and forget every callback."""
        task = self._task
        if task is not None:
            await task
        self._task = None
        streams, self._streams = self._streams, []
        for stream in streams:
            stream.put(_END)
        self._callbacks.clear()
