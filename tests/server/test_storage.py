"""ServerStorage on real SQLite files: batches, conflicts, idempotency, limits, paging."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cogsync.exceptions import (
    ConflictError,
    DatasetLimitExceededError,
    DatasetSizeLimitExceededError,
    InvalidKeyError,
    InvalidNameError,
    InvalidValueError,
    RecordLimitExceededError,
)
from cogsync.limits import Limits
from cogsync.models import PatchOp, Record, RecordPatch
from cogsync.server.changes import export_changes_jsonl
from cogsync.server.hooks import SyncRejected
from cogsync.server.storage import InvalidRequestError, ServerStorage

A, B = "us-east-1:aaaaaaaa-0000-0000-0000-000000000000", "us-east-1:bbbbbbbb-0000"


class Clock:
    """A deterministic clock that moves one second per reading."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[ServerStorage]:
    with ServerStorage(tmp_path / "server.db", clock=Clock()) as store:
        yield store


def put(key: str, value: str, sync_count: int = 0) -> RecordPatch:
    return RecordPatch(PatchOp.REPLACE, key, value, sync_count)


def rm(key: str, sync_count: int) -> RecordPatch:
    return RecordPatch(PatchOp.REMOVE, key, None, sync_count)


_ids = iter(range(10**9))


def push(
    store: ServerStorage,
    patches: Sequence[RecordPatch],
    name: str = "ds",
    ident: str = A,
    **kw: object,
):  # type: ignore[no-untyped-def]
    kw.setdefault("client_request_id", f"req-{next(_ids)}")
    kw.setdefault("device_id", "device-1")
    return store.push_records(ident, name, patches, **kw)  # type: ignore[arg-type]


def pull(
    store: ServerStorage, name: str = "ds", since: int = 0, ident: str = A
) -> dict[str, Record]:
    records: dict[str, Record] = {}
    token = None
    while True:
        page = store.list_records(ident, name, since, next_token=token)
        records.update((r.key, r) for r in page.records)
        token = page.next_token
        if token is None:
            return records


def values(store: ServerStorage, name: str = "ds", ident: str = A) -> dict[str, str | None]:
    return {k: r.value for k, r in pull(store, name, 0, ident).items()}


def test_push_assigns_the_new_sync_count_to_every_written_record(storage: ServerStorage) -> None:
    first = push(storage, [put("a", "1"), put("b", "2")])
    assert (first.sync_count, first.applied) == (1, True)
    assert {r.key: r.sync_count for r in first.records} == {"a": 1, "b": 1}
    second = push(storage, [put("a", "one", 1), put("c", "3")])
    assert second.sync_count == 2
    records = pull(storage)
    assert {k: (r.value, r.sync_count) for k, r in records.items()} == {
        "a": ("one", 2),
        "b": ("2", 1),
        "c": ("3", 2),
    }
    assert records["a"].last_modified_by == "device-1"
    assert records["a"].last_modified_date is not None


def test_stale_sync_count_rejects_the_whole_batch(storage: ServerStorage) -> None:
    push(storage, [put("a", "1"), put("b", "2")])
    push(storage, [put("b", "22", 1)])
    with pytest.raises(ConflictError) as caught:
        push(storage, [put("a", "new", 1), put("b", "stale", 1), put("z", "new")])
    assert (caught.value.key, caught.value.current, caught.value.expected) == ("b", 2, 1)
    assert "'b'" in str(caught.value) and "pull" in str(caught.value)
    assert values(storage) == {"a": "1", "b": "22"}
    assert storage.list_datasets(A).datasets[0].sync_count == 2
    with pytest.raises(ConflictError, match="at syncCount 0"):
        push(storage, [put("never", "x", 5)])


def test_same_client_request_id_applies_once_and_returns_the_first_result(
    storage: ServerStorage,
) -> None:
    first = push(storage, [put("a", "1")], client_request_id="r-1")
    again = push(storage, [put("a", "other", 1)], client_request_id="r-1")
    assert again.applied is False
    assert (again.sync_count, again.records) == (first.sync_count, first.records)
    assert values(storage) == {"a": "1"}
    assert len(storage.read_changes()) == 1
    with pytest.raises(InvalidRequestError, match="already used"):
        push(storage, [put("a", "1")], name="other", client_request_id="r-1")
    with pytest.raises(InvalidRequestError, match="already used"):
        storage.delete_dataset(A, "ds", client_request_id="r-1")


def test_tombstones_are_kept_and_pulled_later(storage: ServerStorage) -> None:
    push(storage, [put("a", "1"), put("b", "2")])
    removed = push(storage, [rm("a", 1)])
    page = storage.list_records(A, "ds", 1)
    assert [(r.key, r.value, r.sync_count) for r in page.records] == [("a", None, 2)]
    assert removed.records[0].value is None
    assert storage.list_datasets(A).datasets[0].record_count == 1
    # A new record over a tombstone may be sent with 0 (the client never saw it) or 2.
    push(storage, [put("a", "back", 0)])
    assert values(storage)["a"] == "back"


def test_dataset_deletion_is_visible_and_a_push_recreates_it(storage: ServerStorage) -> None:
    push(storage, [put("a", "1"), put("b", "2")])
    deleted = storage.delete_dataset(A, "ds", client_request_id="del-1")
    assert (deleted.sync_count, deleted.deleted, deleted.applied) == (2, True, True)
    listed = storage.list_datasets(A).datasets
    assert [(d.name, d.deleted, d.record_count, d.size_in_bytes) for d in listed] == [
        ("ds", True, 0, 0)
    ]
    page = storage.list_records(A, "ds", 1)
    assert page.deleted and page.sync_count == 2
    assert {(r.key, r.value, r.sync_count) for r in page.records} == {
        ("a", None, 2),
        ("b", None, 2),
    }
    assert storage.delete_dataset(A, "ds", client_request_id="del-1").applied is False
    assert storage.delete_dataset(A, "ds", client_request_id="del-2").sync_count == 2
    with pytest.raises(ConflictError):
        push(storage, [put("a", "old", 1)])
    recreated = push(storage, [put("c", "3")])
    assert recreated.sync_count == 3
    assert storage.list_datasets(A).datasets[0].deleted is False
    assert values(storage) == {"a": None, "b": None, "c": "3"}
    absent = storage.delete_dataset(A, "never", client_request_id="del-3")
    assert (absent.applied, absent.sync_count) == (False, 0)


def test_record_and_size_limits_at_and_past_the_boundary(tmp_path: Path) -> None:
    store = ServerStorage(tmp_path / "s.db")
    full = [put(f"k{i:04d}", "v") for i in range(1024)]
    assert push(store, full, name="many").sync_count == 1
    with pytest.raises(RecordLimitExceededError) as caught:
        push(store, [put("one-more", "v")], name="many")
    assert (caught.value.limit, caught.value.attempted) == (1024, 1025)
    # Bytes count UTF-8: "é" is 2 bytes, "€" is 3 bytes: 3 + 349,524 * 3 + 1 = 1,048,576.
    key, value = "ké", "€" * 349_524 + "x"
    assert len(key.encode()) + len(value.encode()) == 1_048_576
    push(store, [put(key, value)], name="big")
    assert store.list_datasets(A).datasets[0].size_in_bytes == 1_048_576
    with pytest.raises(DatasetSizeLimitExceededError) as too_big:
        push(store, [put("z", "")], name="big")
    assert too_big.value.attempted == 1_048_577
    with pytest.raises(DatasetSizeLimitExceededError):
        push(store, [put(key, value + "é", 1)], name="big")
    assert values(store, "big") == {key: value}
    store.close()


def test_key_and_name_limits_count_utf8_bytes(storage: ServerStorage) -> None:
    push(storage, [put("é" * 64, "v")])  # 128 bytes
    with pytest.raises(InvalidKeyError):
        push(storage, [put("é" * 64 + "x", "v")])  # 129 bytes
    with pytest.raises(InvalidKeyError):
        push(storage, [put("", "v")])
    push(storage, [put("k", "v")], name="n" * 128)
    with pytest.raises(InvalidNameError):
        push(storage, [put("k", "v")], name="n" * 129)
    with pytest.raises(InvalidNameError):
        push(storage, [put("k", "v")], name="bad/name")
    with pytest.raises(InvalidValueError, match="REMOVE"):
        push(storage, [RecordPatch(PatchOp.REPLACE, "k", None, 0)])
    with pytest.raises(InvalidRequestError, match="twice"):
        push(storage, [put("d", "1"), put("d", "2")])
    with pytest.raises(InvalidRequestError, match="negative"):
        push(storage, [put("d", "1", -1)])
    with pytest.raises(InvalidRequestError, match="protocol version 2"):
        push(storage, [put("d", "1")], protocol_version=2)
    with pytest.raises(InvalidRequestError, match="clientRequestId"):
        push(storage, [put("d", "1")], client_request_id="")


def test_dataset_count_limit_counts_live_datasets_only(tmp_path: Path) -> None:
    store = ServerStorage(tmp_path / "s.db", Limits(max_datasets=3))
    for name in ("d1", "d2", "d3"):
        push(store, [put("k", "v")], name=name)
    push(store, [put("k2", "v")], name="d3")  # existing dataset: fine at the limit
    with pytest.raises(DatasetLimitExceededError) as caught:
        push(store, [put("k", "v")], name="d4")
    assert (caught.value.limit, caught.value.attempted) == (3, 4)
    store.delete_dataset(A, "d1", client_request_id="x")
    push(store, [put("k", "v")], name="d4")
    with pytest.raises(DatasetLimitExceededError):
        push(store, [put("k", "v", 0)], name="d1")  # recreating counts again
    push(store, [put("k", "v")], name="d1", ident=B)  # other identities have their own limit
    store.close()


def test_paging_with_writes_between_pages_misses_nothing(tmp_path: Path) -> None:
    store = ServerStorage(tmp_path / "s.db")
    for batch in range(5):
        push(store, [put(f"b{batch}-{i}", "v") for i in range(10)])
    first = store.list_records(A, "ds", 0, limit=15)
    assert len(first.records) == 15 and first.sync_count == 5 and first.next_token
    seen = {r.key: r for r in first.records}
    # Another device rewrites a record not yet paged, and adds one.
    push(store, [put("b4-9", "changed", 5), put("late", "new")])
    token: str | None = first.next_token
    while token:
        page = store.list_records(A, "ds", 0, next_token=token, limit=15)
        assert page.sync_count == 5  # fixed at the first page
        assert all(r.sync_count <= 5 for r in page.records)
        seen.update((r.key, r) for r in page.records)
        token = page.next_token
    assert "late" not in seen and "b4-9" not in seen and len(seen) == 49
    order = [(r.sync_count, r.key) for r in first.records]
    assert order == sorted(order)
    rest = pull(store, since=5)
    assert {k: r.value for k, r in rest.items()} == {"b4-9": "changed", "late": "new"}
    seen.update(rest)
    assert len(seen) == 51


@pytest.mark.parametrize("token", ["garbage", "", "e30=", "eyJ2IjoxfQ==", "x" * 5000, "%%%"])
def test_garbage_page_tokens_are_refused(storage: ServerStorage, token: str) -> None:
    push(storage, [put("a", "1"), put("b", "2")])
    with pytest.raises(InvalidRequestError, match="nextToken"):
        storage.list_records(A, "ds", 0, next_token=token)
    with pytest.raises(InvalidRequestError, match="nextToken"):
        storage.list_datasets(A, next_token=token)


def test_page_tokens_are_bound_to_their_arguments(storage: ServerStorage) -> None:
    push(storage, [put("a", "1"), put("b", "2")])
    token = storage.list_records(A, "ds", 0, limit=1).next_token
    assert token is not None
    push(storage, [put("x", "1")], name="other")
    with pytest.raises(InvalidRequestError):
        storage.list_records(A, "other", 0, next_token=token)
    with pytest.raises(InvalidRequestError):
        storage.list_records(A, "ds", 1, next_token=token)
    with pytest.raises(InvalidRequestError, match="limit"):
        storage.list_records(A, "ds", 0, limit=0)
    with pytest.raises(InvalidRequestError, match="lastSyncCount"):
        storage.list_records(A, "ds", -1)


def test_identities_are_isolated(storage: ServerStorage) -> None:
    push(storage, [put("secret", "a's")], name="shared")
    assert storage.list_datasets(B).datasets == ()
    page = storage.list_records(B, "shared", 0)
    assert (page.records, page.sync_count) == ((), 0)
    push(storage, [put("secret", "b's")], name="shared", ident=B)  # 0 works: B has no record
    assert values(storage, "shared", A) == {"secret": "a's"}
    assert values(storage, "shared", B) == {"secret": "b's"}
    assert storage.delete_dataset(B, "shared", client_request_id="same").applied
    assert not storage.list_datasets(A).datasets[0].deleted


def test_dataset_listing_pages_and_includes_tombstones(storage: ServerStorage) -> None:
    for i in range(5):
        push(storage, [put("k", "v")], name=f"d{i}")
    storage.delete_dataset(A, "d2", client_request_id="d")
    first = storage.list_datasets(A, limit=3)
    assert [d.name for d in first.datasets] == ["d0", "d1", "d2"] and first.next_token
    second = storage.list_datasets(A, next_token=first.next_token, limit=3)
    assert [d.name for d in second.datasets] == ["d3", "d4"] and second.next_token is None
    assert [d.deleted for d in first.datasets] == [False, False, True]


def test_reopening_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with ServerStorage(path) as store:
        first = push(store, [put("a", "1"), put("é", "ü")], client_request_id="r-1")
        push(store, [put("gone", "x")], name="old")
        store.delete_dataset(A, "old", client_request_id="r-2")
    with ServerStorage(path) as store:
        assert values(store) == {"a": "1", "é": "ü"}
        assert [(d.name, d.deleted) for d in store.list_datasets(A).datasets] == [
            ("ds", False),
            ("old", True),
        ]
        replay = push(store, [put("a", "2", 1)], client_request_id="r-1")
        assert replay.records == first.records and not replay.applied
        assert [c.dataset_name for c in store.read_changes()] == ["ds", "old", "old"]
        assert push(store, [put("a", "2", 1)]).sync_count == 2


def test_change_log_is_ordered_and_exportable(storage: ServerStorage) -> None:
    push(storage, [put("a", "1"), put("b", "2")], client_request_id="c1")
    push(storage, [put("x", "1")], name="other", ident=B, client_request_id="c2")
    push(storage, [rm("a", 1)], client_request_id="c3")
    storage.delete_dataset(A, "ds", client_request_id="c4")
    changes = storage.read_changes()
    assert [(c.identity_id, c.dataset_name, c.sync_count, c.deleted) for c in changes] == [
        (A, "ds", 1, False),
        (B, "other", 1, False),
        (A, "ds", 2, False),
        (A, "ds", 3, True),
    ]
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    assert changes[0].keys == ("a", "b") and changes[3].keys == ("b",)
    assert [c.client_request_id for c in changes] == ["c1", "c2", "c3", "c4"]
    assert storage.read_changes(after_seq=changes[1].seq, limit=1) == [changes[2]]
    out = io.StringIO()
    assert export_changes_jsonl(storage, out, batch=3) == changes[-1].seq
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["seq"] for line in lines] == [c.seq for c in changes]
    assert lines[0]["keys"] == ["a", "b"] and lines[0]["time"].endswith("+00:00")


def test_sync_trigger_can_modify_and_reject(storage: ServerStorage) -> None:
    seen: list[tuple[str, str, int]] = []

    def trigger(identity: str, name: str, patches: list[RecordPatch]) -> list[RecordPatch]:
        seen.append((identity, name, len(patches)))
        if any(p.key == "forbidden" for p in patches):
            raise SyncRejected("key 'forbidden' is not allowed by this app")
        return [
            RecordPatch(p.op, p.key, p.value.upper() if p.value else None, p.sync_count)
            for p in patches
        ]

    done = push(storage, [put("a", "quiet")], trigger=trigger, client_request_id="t1")
    assert values(storage) == {"a": "QUIET"} and done.records[0].value == "QUIET"
    with pytest.raises(SyncRejected, match="forbidden"):
        push(storage, [put("b", "x"), put("forbidden", "x")], trigger=trigger)
    assert values(storage) == {"a": "QUIET"}
    push(storage, [put("a", "again", 1)], trigger=trigger, client_request_id="t1")
    assert seen == [(A, "ds", 1), (A, "ds", 2)]  # a replay does not reach the trigger

    def bad_output(identity: str, name: str, patches: list[RecordPatch]) -> list[RecordPatch]:
        return [put("", "empty key")]

    with pytest.raises(InvalidKeyError):  # modified batches are validated like any other
        push(storage, [put("c", "x")], trigger=bad_output)


def test_merge_identity_moves_datasets_under_merged_names(storage: ServerStorage) -> None:
    push(storage, [put("a", "guest"), put("b", "x")], name="prefs", ident=B)
    push(storage, [rm("b", 1)], name="prefs", ident=B)
    push(storage, [put("a", "owner")], name="prefs")
    changes = storage.merge_identity(B, A)
    merged = f"prefs.{B}"
    assert [(c.dataset_name, c.sync_count) for c in changes] == [(merged, 3)]
    assert values(storage, merged) == {"a": "guest"}
    assert storage.list_records(A, "prefs", 0).merged_dataset_names == (merged,)
    assert storage.list_datasets(B).datasets == ()
    storage.delete_dataset(A, merged, client_request_id="reconciled")
    assert storage.list_records(A, "prefs", 0).merged_dataset_names == ()
