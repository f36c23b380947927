"""Transactions on the data file, and group commit: several calls sharing one commit.

`Transactions` opens each write's transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, one
fsync with ``synchronous=FULL``). Inside `Transactions.group` each write is a savepoint
instead: a failing write is rolled back alone, and the group's one ``COMMIT`` makes all the
others durable at once.

`GroupCommitThread` is the storage's single thread. The calls queued while it was busy run
as one group (up to ``max_group``); each caller gets its answer only after the commit that
holds its call, so an acknowledged write is on disk, and a refusal or a read is answered
from the state that commit made durable. If the commit fails, every call of the group that
had succeeded gets that error instead: none of them is on disk. A lone call runs in its own
transaction, exactly as without grouping.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

__all__ = ["GroupCommitThread", "Transactions"]

_T = TypeVar("_T")


class Transactions:
    """The write transactions of one connection (guarded by ``lock``), grouped or not."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self._db, self._lock = db, lock
        self._grouped = False

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write: its own transaction, or a savepoint of the open group."""
        db = self._db
        with self._lock:
            grouped = self._grouped
            if grouped and not db.in_transaction:  # SQLite rolled the group back (I/O error)
                raise sqlite3.OperationalError("the group's transaction was rolled back")
            db.execute("SAVEPOINT write" if grouped else "BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK TO write" if grouped else "ROLLBACK")
                    if grouped:
                        db.execute("RELEASE write")
                raise
            db.execute("RELEASE write" if grouped else "COMMIT")

    @contextmanager
    def group(self) -> Iterator[None]:
        """Writes inside share one transaction, committed (one fsync) when the block ends."""
        db = self._db
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            self._grouped = True
            try:
                yield
                self._grouped = False
                if not db.in_transaction:
                    raise sqlite3.OperationalError("the group's transaction was rolled back")
                db.execute("COMMIT")
            except BaseException:
                self._grouped = False
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise


@dataclass(slots=True)
class _Call:
    function: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    value: Any = None
    error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self.function()
        except BaseException as exc:  # handed to the caller, as an executor would
            self.error = exc

    def answer(self) -> None:
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
            self.loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if self.future.done():  # the caller was cancelled
            return
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result(self.value)


class GroupCommitThread:
    """One thread running blocking storage calls, those queued together in one group.

    Args:
        group: opens a group of writes sharing one commit (`Transactions.group`).
        max_group: the most calls one commit holds.
        name: the thread's name.
    """

    def __init__(
        self,
        group: Callable[[], AbstractContextManager[None]],
        *,
        max_group: int = 16,
        name: str = "cogsync-storage_0",
    ) -> None:
        self._group, self._max_group = group, max(1, max_group)
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def run(self, function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """``function(*args, **kwargs)`` on the thread, answered once it is durable."""
        if self._closed:
            raise RuntimeError("the storage thread is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._calls.put(_Call(partial(function, *args, **kwargs), loop, future))
        return await future

    def close(self) -> None:
        """Run the calls already queued, then end the thread (and wait for it)."""
        if not self._closed:
            self._closed = True
            self._calls.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while (first := self._calls.get()) is not None:
            calls, last = [first], False
            while len(calls) < self._max_group:
                try:
                    more = self._calls.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    last = True
                    break
                calls.append(more)
            self._run(calls)
            if last:
                return

    def _run(self, calls: list[_Call]) -> None:
        if len(calls) == 1:
            calls[0].run()
        else:
            try:
                with self._group():
                    for call in calls:
                        call.run()
            except BaseException as exc:  # the commit failed: nothing of the group is on disk
                for call in calls:
                    if call.error is None:
                        call.error = exc
        for call in calls:
            call.answer()
