"""Group commit: storage calls queued together share one commit, each answered after it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from cogsync.exceptions import ConflictError
from cogsync.models import PatchOp, RecordPatch
from cogsync.server.storage import ServerStorage
from cogsync.server.transactions import GroupCommitThread

A = "us-east-1:00000000-0000-0000-0000-00000000000a"


def put(key: str, value: str, sync_count: int = 0) -> RecordPatch:
    return RecordPatch(PatchOp.REPLACE, key, value, sync_count)


class Groups:
    """``storage.group``, counting the groups opened (optionally failing at the commit)."""

    def __init__(self, storage: ServerStorage, fail_commit: bool = False) -> None:
        self.storage, self.fail_commit, self.opened = storage, fail_commit, 0

    @contextmanager
    def _group(self) -> Iterator[None]:
        self.opened += 1
        with self.storage.group():
            yield
            if self.fail_commit:
                raise OSError("the disk is gone")

    def __call__(self) -> AbstractContextManager[None]:
        return self._group()


async def queued_behind_a_blocker(
    thread: GroupCommitThread, calls: list[tuple[object, ...]]
) -> list[object]:
    """Run ``calls`` queued while the thread is busy; return each result or error."""
    started, release = threading.Event(), threading.Event()

    def blocker() -> str:
        started.set()
        release.wait(10)
        return "blocker"

    first = asyncio.ensure_future(thread.run(blocker))
    await asyncio.to_thread(started.wait, 10)
    rest = [asyncio.ensure_future(thread.run(*call)) for call in calls]  # type: ignore[arg-type]
    await asyncio.sleep(0)
    release.set()
    assert await first == "blocker"
    return list(await asyncio.gather(*rest, return_exceptions=True))


async def test_queued_pushes_share_one_commit_and_a_refused_one_changes_nothing(
    tmp_path: Path,
) -> None:
    with ServerStorage(tmp_path / "sync.db") as storage:
        groups = Groups(storage)
        thread = GroupCommitThread(groups)
        try:

            def call(name: str, patches: list[RecordPatch], rid: str) -> tuple[object, ...]:
                return (
                    lambda: storage.push_records(
                        A, name, patches, client_request_id=rid, device_id="d"
                    ),
                )

            results = await queued_behind_a_blocker(
                thread,
                [
                    call("one", [put("a", "1")], "r1"),
                    call("two", [put("b", "2")], "r2"),
                    call("one", [put("a", "stale", 0)], "r3"),  # a is at sync count 1 now
                    call("one", [put("c", "3")], "r4"),
                ],
            )
        finally:
            thread.close()
        assert groups.opened == 1  # the blocker ran alone, the four queued calls together
        assert [getattr(r, "sync_count", None) for r in results] == [1, 1, None, 2]
        assert isinstance(results[2], ConflictError)
        page = storage.list_records(A, "one", 0)
        assert {r.key: (r.value, r.sync_count) for r in page.records} == {
            "a": ("1", 1),
            "c": ("3", 2),
        }
    with ServerStorage(tmp_path / "sync.db") as reopened:  # on disk, not only in memory
        assert {r.key for r in reopened.list_records(A, "two", 0).records} == {"b"}


async def test_a_failed_group_commit_fails_every_call_and_keeps_nothing(tmp_path: Path) -> None:
    with ServerStorage(tmp_path / "sync.db") as storage:
        groups = Groups(storage, fail_commit=True)
        thread = GroupCommitThread(groups)
        try:

            def call(name: str) -> tuple[object, ...]:
                return (
                    lambda: storage.push_records(
                        A, name, [put("k", name)], client_request_id=name, device_id="d"
                    ),
                )

            results = await queued_behind_a_blocker(thread, [call("one"), call("two")])
        finally:
            thread.close()
        assert [type(r) for r in results] == [OSError, OSError]
        assert storage.list_datasets(A).datasets == ()
        # The next call, alone, runs in its own transaction again.
        lone = GroupCommitThread(Groups(storage))
        try:
            change = await lone.run(
                storage.push_records, A, "one", [put("k", "v")], client_request_id="again",
                device_id="d",
            )  # fmt: skip
        finally:
            lone.close()
        assert change.sync_count == 1


async def test_a_cancelled_caller_does_not_stop_the_thread(tmp_path: Path) -> None:
    with ServerStorage(tmp_path / "sync.db") as storage:
        thread = GroupCommitThread(Groups(storage))
        try:
            release = threading.Event()
            slow = asyncio.ensure_future(thread.run(release.wait, 10))
            await asyncio.sleep(0.05)
            slow.cancel()
            release.set()
            with pytest.raises(asyncio.CancelledError):
                await slow
            assert await thread.run(lambda: 42) == 42
        finally:
            thread.close()
        with pytest.raises(RuntimeError, match="closed"):
            await thread.run(lambda: 1)
