"""The `RemoteBackend` contract: one pytest suite every backend must pass.

It pins the sync protocol of ``server_schema/schema.graphql`` as seen through a backend:
push and pull, the per-record sync-count check that rejects a whole batch, idempotent
client request ids, tombstones, deletion and recreation, paging, every limit at and past
its boundary, and `list_datasets` with deleted datasets. Then it runs two devices of one
identity through `AsyncClient` on that backend. Use it by subclassing `BackendContract`::

    class TestMyBackend(BackendContract):
        async def make_backend(self, identity: str) -> RemoteBackend: ...
        async def make_client(self, identity, db_path, device_id) -> AsyncClient: ...

``identity`` is a label: the same label within one test means the same identity, and
labels are fresh in every test, so one server may serve the whole module.
Needs pytest (a test dependency, not a runtime one).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cogsync.client import AsyncClient
from cogsync.engine.conflicts import last_writer_wins, local_wins, remote_wins
from cogsync.exceptions import (
    ConflictError,
    DatasetLimitExceededError,
    DatasetSizeLimitExceededError,
    InvalidKeyError,
    InvalidNameError,
    RecordLimitExceededError,
    UsageError,
)
from cogsync.limits import DEFAULT_LIMITS, Limits
from cogsync.models import (
    Conflict,
    PatchOp,
    PushResult,
    Record,
    RecordPage,
    RecordPatch,
    Resolution,
)
from cogsync.remote.base import RemoteBackend

__all__ = ["BackendContract", "World", "pull_all", "push", "put", "remove"]

T0 = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
DEVICE = "device-contract"


def put(key: str, value: str, sync_count: int = 0) -> RecordPatch:
    """A REPLACE patch stamped with a fixed device time."""
    return RecordPatch(PatchOp.REPLACE, key, value, sync_count, T0)


def remove(key: str, sync_count: int) -> RecordPatch:
    """A REMOVE patch (the record becomes a tombstone)."""
    return RecordPatch(PatchOp.REMOVE, key, None, sync_count, T0)


def _rid() -> str:
    return uuid.uuid4().hex


async def push(
    backend: RemoteBackend, name: str, *patches: RecordPatch, rid: str | None = None
) -> PushResult:
    """Push ``patches`` to dataset ``name`` as one batch (a fresh request id unless ``rid``)."""
    return await backend.push_records(
        name, patches, client_request_id=rid or _rid(), device_id=DEVICE
    )


async def pull_all(
    backend: RemoteBackend, name: str, since: int = 0
) -> tuple[list[RecordPage], list[Record]]:
    """Every page of a pull since ``since``, and all their records in order."""
    pages = [await backend.list_records(name, since)]
    while pages[-1].next_token is not None:
        pages.append(await backend.list_records(name, since, pages[-1].next_token))
    return pages, [r for page in pages for r in page.records]


def _live(records: Sequence[Record]) -> dict[str, str]:
    values: dict[str, str | None] = {}
    for record in records:
        values[record.key] = record.value
    return {k: v for k, v in values.items() if v is not None}


class World:
    """The backends and clients of one test; everything is closed when the test ends."""

    def __init__(self, contract: BackendContract, directory: Path) -> None:
        self._contract = contract
        self._directory = directory
        self._suffix = uuid.uuid4().hex[:10]
        self._backends: dict[str, RemoteBackend] = {}
        self._clients: list[AsyncClient] = []

    def identity(self, label: str) -> str:
        """The per-test identity label the subclass hooks receive."""
        return f"{label}-{self._suffix}"

    async def backend(self, label: str = "alice") -> RemoteBackend:
        """The backend of identity ``label`` (one per label)."""
        if label not in self._backends:
            made = await self._contract.make_backend(self.identity(label))
            self._backends[label] = made
        return self._backends[label]

    async def client(self, device: str, label: str = "alice") -> AsyncClient:
        """A new device (its own SQLite file) of identity ``label``."""
        path = self._directory / f"{label}-{device}.db"
        made = await self._contract.make_client(self.identity(label), path, device)
        self._clients.append(made)
        return made

    async def close(self) -> None:
        """Close every client and backend made."""
        for made in self._clients:
            await made.close()
        for backend in self._backends.values():
            await backend.close()


class BackendContract:
    """Behaviour every `RemoteBackend` shares; subclasses supply backends and clients."""

    limits: Limits = DEFAULT_LIMITS
    page_size: int = 1024

    async def make_backend(self, identity: str) -> RemoteBackend:
        """Return a backend acting as identity ``identity`` (a fresh label per test)."""
        raise NotImplementedError

    async def make_client(self, identity: str, db_path: Path, device_id: str) -> AsyncClient:
        """Return an `AsyncClient` of identity ``identity`` with its store at ``db_path``."""
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def world(self, directory: Path) -> AsyncIterator[World]:
        """A `World` for one test, closed on exit."""
        world = World(self, directory)
        try:
            yield world
        finally:
            await world.close()

    # ---- push and pull ------------------------------------------------------------------
    async def test_server_info_announces_limits(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            info = await (await w.backend()).server_info()
        lim = self.limits
        assert info.protocol_version == 1
        assert (info.max_datasets, info.max_records) == (lim.max_datasets, lim.max_records)
        assert (info.max_dataset_bytes, info.max_key_bytes) == (
            lim.max_dataset_bytes,
            lim.max_key_bytes,
        )

    async def test_absent_dataset_pulls_empty(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            page = await (await w.backend()).list_records("nothing", 0)
        assert (page.sync_count, page.deleted, page.records, page.next_token) == (
            0,
            False,
            (),
            None,
        )

    async def test_push_then_pull_round_trips(self, tmp_path: Path) -> None:
        values = {"a": "1", "json": '{"x": [1, 2]}', "empty": "", "ünï": "ƒ😀\nline"}
        async with self.world(tmp_path) as w:
            b = await w.backend()
            result = await push(b, "notes", *(put(k, v) for k, v in values.items()))
            assert result.sync_count == 1 and result.dataset_name == "notes"
            assert {r.key: r.value for r in result.records} == values
            assert all(r.sync_count == 1 for r in result.records)
            page = await b.list_records("notes", 0)
            assert page.sync_count == 1 and not page.deleted and page.next_token is None
            assert {r.key: r.value for r in page.records} == values
            for record in page.records:
                assert record.last_modified_by == DEVICE
                assert record.device_last_modified_date == T0
                assert record.last_modified_date is not None
            assert [r.key for r in page.records] == sorted(values)
            later = await b.list_records("notes", 1)
            assert (later.sync_count, later.records) == (1, ())

    async def test_pull_returns_only_newer_records(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            b = await w.backend()
            await push(b, "d", put("a", "1"), put("b", "1"))
            await push(b, "d", put("b", "2", 1))
            page = await b.list_records("d", 1)
            assert page.sync_count == 2
            assert [(r.key, r.value, r.sync_count) for r in page.records] == [("b", "2", 2)]

    async def test_stale_sync_count_rejects_the_whole_batch(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            b = await w.backend()
            await push(b, "d", put("k1", "a"), put("k2", "a"))
            with pytest.raises(ConflictError) as caught:
                await push(b, "d", put("k3", "new"), put("k1", "b", 0))
            assert (caught.value.key, caught.value.current, caught.value.expected) == ("k1", 1, 0)
            await push(b, "d", put("k1", "b", 1))
            with pytest.raises(ConflictError) as caught:
                await push(b, "d", put("k2", "c", 1), remove("k1", 1))
            assert (caught.value.key, caught.value.current, caught.value.expected) == ("k1", 2, 1)
            assert caught.value.retryable
            _, records = await pull_all(b, "d")
            assert _live(records) == {"k1": "b", "k2": "a"}  # neither rejected batch landed
            assert (await b.list_records("d", 0)).sync_count == 2

    async def test_retried_request_id_applies_once(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            b = await w.backend()
            rid = _rid()
            first = await push(b, "d", put("k", "v"), rid=rid)
            again = await push(b, "d", put("k", "v"), rid=rid)
            assert (again.sync_count, [r.key for r in again.records]) == (first.sync_count, ["k"])
            assert (await b.list_records("d", 0)).sync_count == 1
            assert (await push(b, "d", put("k", "w", 1))).sync_count == 2
            # a replay answers with the first result though the batch would now conflict
            assert (await push(b, "d", put("k", "v"), rid=rid)).sync_count == 1
            assert _live((await pull_all(b, "d"))[1]) == {"k": "w"}

    async def test_request_ids_belong_to_their_identity(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            a, b = await w.backend("alice"), await w.backend("bob")
            rid = _rid()
            await push(a, "d", put("k", "alice"), rid=rid)
            await push(a, "d", put("k", "alice2", 1))
            assert (await push(b, "d", put("k", "bob"), rid=rid)).sync_count == 1
            assert _live((await pull_all(b, "d"))[1]) == {"k": "bob"}

    async def test_request_id_reused_for_another_request_is_refused(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            b = await w.backend()
            rid = _rid()
            await push(b, "d", put("k", "v"), rid=rid)
            with pytest.raises(UsageError):
                await push(b, "other", put("k", "v"), rid=rid)
            with pytest.raises(UsageError):
                await b.delete_dataset("d", client_request_id=rid)
            listed = await b.list_datasets()
        assert [(d.name, d.deleted) for d in listed] == [("d", False)]

    async def test_duplicate_key_in_one_push_is_refused(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            b = await w.backend()
            with pytest.raises(UsageError):
                await push(b, "d", put("k", "a"), put("k", "b"))
            assert await b.list_datasets() == []

    # ---- tombstones, deletion ---------------------------------------------------------------
    async def test_remove_leaves_a_tombstone(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            b = await w.backend()
            await push(b, "d", put("gone", "xx"), put("kept", "yyy"))
            assert (await push(b, "d", remove("gone", 1))).sync_count == 2
            page = await b.list_records("d", 1)
            assert [(r.key, r.value, r.sync_count) for r in page.records] == [("gone", None, 2)]
            _, records = await pull_all(b, "d")
            assert {r.key for r in records} == {"gone", "kept"}
            (listed,) = await b.list_datasets()
            assert (listed.record_count, listed.size_in_bytes) == (1, len("kept") + 3)
            with pytest.raises(ConflictError):  # a tombstone has a sync count of its own
                await push(b, "d", put("gone", "again", 1))
            assert (await push(b, "d", put("gone", "again", 2))).sync_count == 3

    async def test_new_record_may_replace_a_tombstone(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            b = await w.backend()
            await push(b, "d", put("k", "1"))
            await push(b, "d", remove("k", 1))
            assert (await push(b, "d", put("k", "2", 0))).sync_count == 3
            assert _live((await pull_all(b, "d"))[1]) == {"k": "2"}

    async def test_delete_and_recreate(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            b = await w.backend()
            await push(b, "d", put("a", "1"), put("b", "2"))
            rid = _rid()
            assert await b.delete_dataset("d", client_request_id=rid) == 2
            assert await b.delete_dataset("d", client_request_id=rid) == 2  # replay
            assert await b.delete_dataset("d", client_request_id=_rid()) == 2  # already deleted
            pages, records = await pull_all(b, "d")
            assert pages[0].deleted and pages[0].sync_count == 2
            tombstones = {(r.key, r.value, r.sync_count) for r in records}
            assert tombstones == {("a", None, 2), ("b", None, 2)}
            (listed,) = await b.list_datasets()
            assert (listed.deleted, listed.record_count, listed.size_in_bytes) == (True, 0, 0)
            assert (await push(b, "d", put("a", "new"))).sync_count == 3
            page = await b.list_records("d", 2)
            assert not page.deleted
            assert [(r.key, r.value) for r in page.records] == [("a", "new")]
            (listed,) = await b.list_datasets()
            assert (listed.deleted, listed.sync_count, listed.record_count) == (False, 3, 1)

    async def test_deleting_an_absent_dataset_changes_nothing(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            b = await w.backend()
            assert await b.delete_dataset("never", client_request_id=_rid()) == 0
            assert await b.list_datasets() == []

    async def test_list_datasets_includes_deleted_ones(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            b = await w.backend()
            for name in ("zeta", "alpha", "mid"):
                await push(b, name, put("k", name))
            await b.delete_dataset("mid", client_request_id=_rid())
            listed = await b.list_datasets()
        assert [(d.name, d.deleted, d.sync_count) for d in listed] == [
            ("alpha", False, 1),
            ("mid", True, 2),
            ("zeta", False, 1),
        ]
        assert listed[0].record_count == 1 and listed[0].size_in_bytes == len("kalpha")
        assert all(d.last_modified is not None for d in listed)

    async def test_identities_are_isolated(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            a, b = await w.backend("alice"), await w.backend("bob")
            await push(a, "d", put("k", "alice"))
            assert await b.list_datasets() == []
            assert (await b.list_records("d", 0)).records == ()
            assert await b.delete_dataset("d", client_request_id=_rid()) == 0
            assert _live((await pull_all(a, "d"))[1]) == {"k": "alice"}

    # ---- paging ------------------------------------------------------------------------------
    async def test_pull_pages_keep_their_up_to_count(self, tmp_path: Path) -> None:
        n = self.limits.max_records
        keys = [f"r{i:05d}" for i in range(n)]
        async with self.world(tmp_path) as w:
            b = await w.backend()
            await push(b, "big", *(put(k, "v") for k in keys))
            churn = [remove(k, 1) for k in keys[:10]] + [put(f"s{i}", "new") for i in range(10)]
            await push(b, "big", *churn)
            first = await b.list_records("big", 0)
            assert first.next_token is not None and len(first.records) <= self.page_size
            # a write between two pages is not in the later pages: the next pull gets it
            await push(b, "big", put(keys[-1], "late", 1))
            pages = [first]
            while pages[-1].next_token is not None:
                pages.append(await b.list_records("big", 0, pages[-1].next_token))
            records = [r for page in pages for r in page.records]
            assert len(pages) >= 2 and all(p.sync_count == 2 for p in pages)
            order = [(r.sync_count, r.key) for r in records]
            assert order == sorted(order) and len(set(order)) == n + 10
            assert len(_live(records)) == n
            rest = await b.list_records("big", 2)
            assert [(r.key, r.value) for r in rest.records] == [(keys[-1], "late")]

    # ---- limits ------------------------------------------------------------------------------
    async def test_record_limit_at_and_past_the_boundary(self, tmp_path: Path) -> None:
        n = self.limits.max_records
        async with self.world(tmp_path) as w:
            b = await w.backend()
            await push(b, "d", *(put(f"k{i}", "v") for i in range(n)))
            with pytest.raises(RecordLimitExceededError) as caught:
                await push(b, "d", put("one-more", "v"))
            assert (caught.value.limit, caught.value.attempted) == (n, n + 1)
            assert (await push(b, "d", remove("k0", 1), put("one-more", "v"))).sync_count == 2
            (listed,) = await b.list_datasets()
            assert listed.record_count == n

    async def test_size_limit_at_and_past_the_boundary(self, tmp_path: Path) -> None:
        limit = self.limits.max_dataset_bytes
        async with self.world(tmp_path) as w:
            b = await w.backend()
            # "big" + its value, plus "k" + "é" (2 bytes): exactly the limit
            await push(b, "d", put("big", "x" * (limit - 3 - 3)), put("k", "é"))
            (listed,) = await b.list_datasets()
            assert listed.size_in_bytes == limit
            with pytest.raises(DatasetSizeLimitExceededError) as caught:
                await push(b, "d", put("k", "éa", 1))
            assert (caught.value.limit, caught.value.attempted) == (limit, limit + 1)
            assert (await b.list_records("d", 0)).sync_count == 1
            assert (await push(b, "d", put("k", "a", 1))).sync_count == 2

    async def test_dataset_limit_at_and_past_the_boundary(self, tmp_path: Path) -> None:
        n = self.limits.max_datasets
        async with self.world(tmp_path) as w:
            b = await w.backend()
            for i in range(n):
                await push(b, f"d{i}", put("k", "v"))
            await push(b, "d0", put("k2", "v"))  # writing to a dataset that exists is fine
            with pytest.raises(DatasetLimitExceededError) as caught:
                await push(b, "extra", put("k", "v"))
            assert (caught.value.limit, caught.value.attempted) == (n, n + 1)
            await b.delete_dataset("d0", client_request_id=_rid())
            await push(b, "extra", put("k", "v"))
            with pytest.raises(DatasetLimitExceededError):  # recreating counts again
                await push(b, "d0", put("k", "v"))
            listed = await b.list_datasets()
        assert len(listed) == n + 1 and sum(d.deleted for d in listed) == 1

    async def test_key_and_name_limits(self, tmp_path: Path) -> None:
        top_key, top_name = self.limits.max_key_bytes, self.limits.max_name_length
        async with self.world(tmp_path) as w:
            b = await w.backend()
            await push(b, "n" * top_name, put("k" * top_key, "v"), put("é" * (top_key // 2), "v"))
            for key in ("k" * (top_key + 1), "é" * (top_key // 2) + "k"):
                with pytest.raises(InvalidKeyError):
                    await push(b, "d", put(key, "v"))
            for name in ("n" * (top_name + 1), "bad/name"):
                with pytest.raises(InvalidNameError):
                    await push(b, name, put("k", "v"))
                with pytest.raises(InvalidNameError):
                    await b.list_records(name, 0)
            assert [d.name for d in await b.list_datasets()] == ["n" * top_name]

    # ---- two devices through AsyncClient ------------------------------------------------------
    async def test_two_devices_converge(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            laptop, phone = await w.client("laptop"), await w.client("phone")
            lp = await laptop.dataset("prefs")
            await lp.put_all({"theme": "dark", "lang": "en", "gone": "x"})
            assert (await lp.synchronize()).pushed == 3
            pp = await phone.dataset("prefs")
            first = await pp.synchronize()
            assert (first.pulled, first.pushed, first.sync_count) == (3, 0, 1)
            await pp.put("units", "metric")
            await pp.remove("gone")
            assert (await pp.synchronize()).pushed == 2
            assert (await lp.synchronize()).pulled == 2
            expected = {"theme": "dark", "lang": "en", "units": "metric"}
            assert await lp.get_all() == await pp.get_all() == expected
            record = await lp.record("units")
            assert record is not None and not record.dirty and record.last_modified_by == "phone"

    @pytest.mark.parametrize("resolver", ["last_writer_wins", "remote_wins", "local_wins"])
    async def test_conflict_is_resolved_and_converges(self, tmp_path: Path, resolver: str) -> None:
        chosen = RESOLVERS[resolver]
        async with self.world(tmp_path) as w:
            laptop, phone = await w.client("laptop"), await w.client("phone")
            lp, pp = await laptop.dataset("prefs"), await phone.dataset("prefs")
            await lp.put("theme", "dark")
            await asyncio.sleep(0.01)
            await pp.put("theme", "light")  # the later edit
            await lp.synchronize()
            result = await pp.synchronize(on_conflict=chosen)
            assert [c.key for c in result.conflicts] == ["theme"]
            conflict = result.conflicts[0]
            assert (conflict.local.value, conflict.remote.value) == ("light", "dark")
            await lp.synchronize()
            winner = "dark" if resolver == "remote_wins" else "light"
            assert await lp.get("theme") == await pp.get("theme") == winner

    async def test_custom_resolver_merges_values(self, tmp_path: Path) -> None:
        def union(name: str, conflicts: list[Conflict]) -> list[Resolution]:
            out = []
            for c in conflicts:
                parts = {*(c.local.value or "").split(","), *(c.remote.value or "").split(",")}
                out.append(c.resolve_with_value(",".join(sorted(parts))))
            return out

        async with self.world(tmp_path) as w:
            laptop, phone = await w.client("laptop"), await w.client("phone")
            lp, pp = await laptop.dataset("tags"), await phone.dataset("tags")
            await lp.put("tags", "a,b")
            await lp.synchronize()
            await pp.synchronize()
            await lp.put("tags", "a,b,c")
            await pp.put("tags", "a,b,d")
            await lp.synchronize()
            assert len((await pp.synchronize(on_conflict=union)).conflicts) == 1
            await lp.synchronize()
            assert await lp.get("tags") == await pp.get("tags") == "a,b,c,d"

    async def test_deletion_reaches_the_other_device(self, tmp_path: Path) -> None:
        async with self.world(tmp_path) as w:
            laptop, phone = await w.client("laptop"), await w.client("phone")
            lp = await laptop.dataset("list")
            await lp.put_all({"x": "1", "y": "2"})
            await lp.synchronize()
            pp = await phone.dataset("list")
            await pp.synchronize()
            await lp.delete()
            assert (await lp.synchronize()).deleted
            seen: list[str] = []

            def on_deleted(name: str) -> bool:
                seen.append(name)
                return True

            result = await pp.synchronize(on_dataset_deleted=on_deleted)
            assert seen == ["list"] and result.deleted
            assert "list" not in {m.name for m in await phone.list_datasets()}
            # recreated under the same name: the other device gets only the new data
            lp = await laptop.dataset("list")
            await lp.put("z", "3")
            await lp.synchronize()
            pp = await phone.dataset("list")
            await pp.synchronize()
            assert await pp.get_all() == await lp.get_all() == {"z": "3"}

    async def test_many_records_reach_a_new_device_across_pages(self, tmp_path: Path) -> None:
        n = self.limits.max_records
        async with self.world(tmp_path) as w:
            laptop, phone = await w.client("laptop"), await w.client("phone")
            lp = await laptop.dataset("big")
            await lp.put_all({f"k{i:04d}": f"v{i}" for i in range(n)})
            await lp.synchronize()
            for i in range(20):
                await lp.remove(f"k{i:04d}")
            await lp.put_all({f"new{i}": "n" for i in range(20)})
            await lp.synchronize()
            pp = await phone.dataset("big")
            result = await pp.synchronize()
            assert result.pulled == n + 20 and result.sync_count == 2
            values = await pp.get_all()
            assert values == await lp.get_all() and len(values) == n


RESOLVERS: dict[str, Callable[[str, list[Conflict]], list[Resolution]]] = {
    "last_writer_wins": last_writer_wins,
    "remote_wins": remote_wins,
    "local_wins": local_wins,
}
