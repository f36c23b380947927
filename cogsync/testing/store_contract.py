"""The `LocalStore` contract: one pytest suite every store implementation must pass.

Use it by subclassing `StoreContract` in a test module and implementing ``make_store``
(and ``reopen`` for stores that persist)::

    class TestMyStore(StoreContract):
        def make_store(self, directory: Path, limits: Limits) -> LocalStore:
            return MyStore(directory / "device.db", limits=limits)

Needs pytest (a test dependency, not a runtime one).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cogsync.exceptions import (
    DatasetLimitExceededError,
    DatasetSizeLimitExceededError,
    IdentityConflictError,
    InvalidKeyError,
    InvalidNameError,
    InvalidValueError,
    LimitExceededError,
    RecordLimitExceededError,
    UsageError,
)
from cogsync.limits import DEFAULT_LIMITS, Limits
from cogsync.models import Record, RecordWrite
from cogsync.store.base import LocalStore

__all__ = ["OWNER", "T0", "StoreContract", "snapshot", "synced"]

T0 = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
OWNER = "eu-west-1:11111111-2222-3333-4444-555555555555"
MAX_BYTES = DEFAULT_LIMITS.max_dataset_bytes


def snapshot(store: LocalStore, owners: list[str]) -> dict[str, Any]:
    """Everything observable in ``store`` for ``owners``: datasets, records, bases, identity."""
    state: dict[str, Any] = {
        "identity_id": store.identity_id(),
        "unsynced": store.has_unsynced_changes(),
    }
    for owner in owners:
        for ds in store.list_datasets(owner):
            state[f"{owner}/{ds.name}"] = (
                ds,
                store.get_records(owner, ds.name),
                store.size_in_bytes(owner, ds.name),
                store.get_bases(owner, ds.name),
            )
    return state


def synced(store: LocalStore, owner: str, name: str, values: dict[str, str], count: int) -> None:
    """Store ``values`` as clean records that the server holds at sync count ``count``."""
    writes = [
        RecordWrite(Record(k, v, sync_count=count, last_modified_date=T0), None)
        for k, v in values.items()
    ]
    store.apply_sync(owner, name, writes, last_sync_count=count)


class StoreContract:
    """Behaviour every `LocalStore` shares; subclasses supply the store."""

    def make_store(self, directory: Path, limits: Limits) -> LocalStore:
        """Return a new, empty store keeping its files (if any) under ``directory``."""
        raise NotImplementedError

    def reopen(self, store: LocalStore) -> LocalStore:
        """Close ``store`` and open it again; stores that keep nothing return it as is."""
        return store

    def again(self, store: LocalStore) -> LocalStore:
        """`reopen` ``store``, closing the new one when the test ends."""
        store = self.reopen(store)
        self._opened.append(store)
        return store

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[LocalStore]:
        """A fresh store with the default limits."""
        self._opened: list[LocalStore] = [self.make_store(tmp_path, DEFAULT_LIMITS)]
        yield self._opened[0]
        for store in self._opened:
            store.close()

    def assert_unchanged(self, store: LocalStore, before: dict[str, Any]) -> LocalStore:
        """Check ``store`` still equals ``before``, also after reopening; return the store."""
        owners = [OWNER, store.provisional_owner()]
        assert snapshot(store, owners) == before
        store = self.again(store)
        assert snapshot(store, owners) == before
        return store

    # -- identity and bookkeeping -------------------------------------------------------

    def test_new_store_is_empty(self, store: LocalStore) -> None:
        assert store.device_id()
        assert store.identity_id() is None
        assert store.provisional_owner() != store.device_id()
        assert store.list_datasets(store.provisional_owner()) == []
        assert not store.has_unsynced_changes()

    def test_identity_and_device_ids_persist(self, store: LocalStore) -> None:
        device = store.device_id()
        store.set_identity_id(OWNER)
        store = self.again(store)
        assert (store.device_id(), store.identity_id()) == (device, OWNER)
        store.set_identity_id(None)
        assert self.again(store).identity_id() is None

    def test_put_and_get(self, store: LocalStore) -> None:
        store.write_local(OWNER, "settings", {"theme": "dark", "€": "é😀"}, T0)
        store = self.again(store)
        rec = store.get_record(OWNER, "settings", "theme")
        assert rec == Record("theme", "dark", 0, T0, store.device_id(), T0, True, 1)
        assert store.get_records(OWNER, "settings")["€"].value == "é😀"
        assert store.get_record(OWNER, "settings", "missing") is None
        assert store.size_in_bytes(OWNER, "settings") == 5 + 4 + 3 + 6
        (ds,) = store.list_datasets(OWNER)
        assert (ds.name, ds.last_sync_count, ds.deleted_pending, ds.last_modified) == (
            "settings", 0, False, T0,
        )  # fmt: skip
        assert store.get_dataset(OWNER, "settings") == ds
        assert store.get_dataset(OWNER, "other") is None

    @pytest.mark.parametrize("count", [2, 100])
    @pytest.mark.parametrize("nul", [False, True])
    def test_any_text_round_trips(self, store: LocalStore, count: int, nul: bool) -> None:
        texts = ["\n\t\"\\'", "\x01\x1f\x7f", "\u2028\ufeff", "\U0010ffff", "😀é€", ""]
        if nul:
            texts = ["a\x00b", "\x00", *texts]
        values = {f"k{i}{texts[i % len(texts)]}": texts[i % len(texts)] for i in range(count)}
        synced(store, OWNER, "d", values, 1)
        store.write_local(OWNER, "d", {key: None for key in values}, T0)
        store = self.again(store)
        records = store.get_records(OWNER, "d")
        assert {k: (r.value, r.dirty) for k, r in records.items()} == {
            k: (None, True) for k in values
        }
        assert store.size_in_bytes(OWNER, "d") == 0
        store.write_local(OWNER, "d", values, T0)
        assert {k: r.value for k, r in store.get_records(OWNER, "d").items()} == values
        size = sum(len(k.encode()) + len(v.encode()) for k, v in values.items())
        assert store.size_in_bytes(OWNER, "d") == size

    def test_datetimes_come_back_as_aware_utc(self, store: LocalStore) -> None:
        local = T0.astimezone(timezone(timedelta(hours=-5)))
        store.write_local(OWNER, "d", {"k": "v"}, local)
        rec = self.again(store).get_record(OWNER, "d", "k")
        assert rec is not None and rec.last_modified_date == T0
        assert rec.last_modified_date.utcoffset() == timedelta(0)

    def test_replace_bumps_revision_and_keeps_sync_count(self, store: LocalStore) -> None:
        synced(store, OWNER, "d", {"k": "v1"}, 4)
        store.write_local(OWNER, "d", {"k": "v2"}, T0)
        store.write_local(OWNER, "d", {"k": "v3"}, T0 + timedelta(seconds=1))
        rec = self.again(store).get_record(OWNER, "d", "k")
        assert rec is not None
        assert (rec.value, rec.sync_count, rec.dirty, rec.revision) == ("v3", 4, True, 2)
        assert rec.device_last_modified_date == T0 + timedelta(seconds=1)

    def test_put_all_is_one_write(self, store: LocalStore) -> None:
        values = {f"k{i}": str(i) for i in range(1000)}
        store.write_local(OWNER, "d", values, T0)
        records = store.get_records(OWNER, "d")
        assert {k: r.value for k, r in records.items()} == values
        assert {r.revision for r in records.values()} == {1}

    def test_create_dataset(self, store: LocalStore) -> None:
        state = store.create_dataset(OWNER, "empty")
        assert (state.name, state.last_sync_count, state.deleted_pending) == ("empty", 0, False)
        assert store.create_dataset(OWNER, "empty") == state
        assert self.again(store).get_records(OWNER, "empty") == {}

    # -- tombstones and dirty tracking --------------------------------------------------

    def test_remove_never_synced_record_deletes_it(self, store: LocalStore) -> None:
        store.write_local(OWNER, "d", {"a": "1", "b": "2"}, T0)
        store.write_local(OWNER, "d", {"a": None, "never": None}, T0)
        assert list(self.again(store).get_records(OWNER, "d")) == ["b"]

    def test_remove_of_a_record_a_push_may_have_carried_leaves_a_tombstone(
        self, store: LocalStore
    ) -> None:
        store.write_local(OWNER, "d", {"a": "1", "b": "2"}, T0)
        store.mark_sent(OWNER, "d", ["a", "absent"])  # the push's answer may get lost
        store = self.again(store)
        store.write_local(OWNER, "d", {"a": None, "b": None}, T0)
        store = self.again(store)
        assert list(store.get_records(OWNER, "d")) == ["a"]
        assert store.get_record(OWNER, "d", "a") == Record(
            "a", None, 0, T0, store.device_id(), T0, True, 2
        )
        assert [r.key for r in store.dirty_records(OWNER, "d")] == ["a"]

    def test_remove_synced_record_leaves_dirty_tombstone(self, store: LocalStore) -> None:
        synced(store, OWNER, "d", {"a": "1", "b": "22"}, 3)
        store.write_local(OWNER, "d", {"a": None}, T0)
        store = self.again(store)
        assert store.get_record(OWNER, "d", "a") == Record(
            "a", None, 3, T0, store.device_id(), T0, True, 1
        )
        assert store.size_in_bytes(OWNER, "d") == 3
        assert [r.key for r in store.dirty_records(OWNER, "d")] == ["a"]

    def test_dirty_tracking(self, store: LocalStore) -> None:
        synced(store, OWNER, "d", {"a": "1", "b": "2"}, 1)
        assert store.dirty_records(OWNER, "d") == []
        assert not store.has_unsynced_changes()
        store.write_local(OWNER, "d", {"b": "3", "c": "4"}, T0)
        assert [r.key for r in store.dirty_records(OWNER, "d")] == ["b", "c"]
        assert self.again(store).has_unsynced_changes()

    # -- apply_sync ---------------------------------------------------------------------

    def test_apply_sync_guard_matches_and_keeps_revision(self, store: LocalStore) -> None:
        store.write_local(OWNER, "d", {"k": "mine"}, T0)
        server = Record("k", "mine", 5, T0, "other", T0, False)
        assert store.apply_sync(OWNER, "d", [RecordWrite(server, 1)], last_sync_count=5) == []
        store = self.again(store)
        assert store.get_record(OWNER, "d", "k") == Record(
            "k", "mine", 5, T0, "other", T0, False, 1
        )
        state = store.get_dataset(OWNER, "d")
        assert state is not None and state.last_sync_count == 5
        assert not store.has_unsynced_changes()

    def test_apply_sync_skips_write_whose_revision_moved(self, store: LocalStore) -> None:
        store.write_local(OWNER, "d", {"k": "v1", "j": "x"}, T0)
        store.write_local(OWNER, "d", {"k": "v2"}, T0)  # the app edits during the sync
        writes = [
            RecordWrite(Record("k", "server", 2), expected_revision=1),
            RecordWrite(Record("j", "server", 2), expected_revision=1),
            RecordWrite(Record("new", "server", 2), expected_revision=0),
            RecordWrite(Record("forced", "server", 2), expected_revision=None),
        ]
        assert store.apply_sync(OWNER, "d", writes, last_sync_count=2) == ["k"]
        records = self.again(store).get_records(OWNER, "d")
        assert (records["k"].value, records["k"].dirty, records["k"].revision) == ("v2", True, 2)
        assert (records["j"].value, records["j"].sync_count, records["j"].dirty) == (
            "server",
            2,
            False,
        )
        assert records["new"].revision == 0 and records["forced"].value == "server"

    def test_apply_sync_absent_guard_skips_record_created_meanwhile(
        self, store: LocalStore
    ) -> None:
        store.write_local(OWNER, "d", {"k": "local"}, T0)
        skipped = store.apply_sync(OWNER, "d", [RecordWrite(Record("k", "remote", 1), 0)])
        assert skipped == ["k"]
        rec = store.get_record(OWNER, "d", "k")
        assert rec is not None and (rec.value, rec.sync_count) == ("local", 0)

    def test_keep_sync_count_on_mismatch_adopts_only_sync_count(self, store: LocalStore) -> None:
        store.write_local(OWNER, "d", {"k": "pushed"}, T0)
        store.write_local(OWNER, "d", {"k": "edited during push"}, T0)
        ack = RecordWrite(Record("k", "pushed", 7), 1, keep_sync_count_on_mismatch=True)
        assert store.apply_sync(OWNER, "d", [ack]) == ["k"]
        rec = self.again(store).get_record(OWNER, "d", "k")
        assert rec is not None
        assert (rec.value, rec.sync_count, rec.dirty, rec.revision) == (
            "edited during push",
            7,
            True,
            2,
        )

    def test_keep_sync_count_for_record_removed_during_push(self, store: LocalStore) -> None:
        store.write_local(OWNER, "d", {"k": "pushed"}, T0)
        store.write_local(OWNER, "d", {"k": None}, T0)  # never synced: deleted outright
        ack = RecordWrite(Record("k", "pushed", 3), 1, keep_sync_count_on_mismatch=True)
        assert store.apply_sync(OWNER, "d", [ack]) == ["k"]
        rec = self.again(store).get_record(OWNER, "d", "k")
        assert rec is not None and (rec.value, rec.sync_count, rec.dirty) == (None, 3, True)
        assert rec.revision > 1

    def test_a_record_created_again_never_takes_a_revision_a_sync_may_hold(
        self, store: LocalStore
    ) -> None:
        # The app removed a never-synced record (deleted outright) and put it again while a
        # push carrying its first value was under way: the push's acknowledgement, guarded
        # by the first revision, must not settle the new value with the pushed one.
        store.write_local(OWNER, "d", {"k": "pushed", "j": "pushed"}, T0)
        first = store.get_records(OWNER, "d")
        store.write_local(OWNER, "d", {"k": None}, T0)
        store.mark_dataset_deleted(OWNER, "d")  # j goes with its dataset
        store = self.again(store)
        store.write_local(OWNER, "d", {"k": "put again", "j": "put again"}, T0)
        acks = [
            RecordWrite(
                Record(key, "pushed", 3), first[key].revision, keep_sync_count_on_mismatch=True
            )
            for key in ("j", "k")
        ]
        assert store.apply_sync(OWNER, "d", acks) == ["j", "k"]
        records = self.again(store).get_records(OWNER, "d")
        assert {k: (r.value, r.dirty) for k, r in records.items()} == {
            "j": ("put again", True),
            "k": ("put again", True),
        }
        assert all(records[k].revision > first[k].revision for k in records)

    def test_apply_sync_bypasses_app_limits(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, Limits(max_records=2, max_key_bytes=4))
        synced(store, OWNER, "d", {"a": "1", "b": "2", "long-key": "3"}, 1)
        assert len(store.get_records(OWNER, "d")) == 3
        with pytest.raises(RecordLimitExceededError):
            store.write_local(OWNER, "d", {"c": "4"}, T0)
        store.close()

    def test_failed_apply_sync_changes_nothing(self, store: LocalStore) -> None:
        synced(store, OWNER, "d", {"a": "1"}, 1)
        before = snapshot(store, [OWNER])
        bad = Record("b", 5)  # type: ignore[arg-type]
        with pytest.raises(InvalidValueError):
            store.apply_sync(
                OWNER,
                "d",
                [RecordWrite(Record("a", "2", 2), None), RecordWrite(bad, None)],
                last_sync_count=2,
            )
        with pytest.raises(InvalidKeyError):
            store.apply_sync(OWNER, "d", [RecordWrite(Record("", "2", 2), None)], last_sync_count=2)
        self.assert_unchanged(store, before)

    def test_reset_sync_counts(self, store: LocalStore) -> None:
        synced(store, OWNER, "d", {"a": "1", "b": "2"}, 4)
        store.write_local(OWNER, "d", {"b": None}, T0)
        store.apply_sync(OWNER, "d", [], reset_sync_counts=True, last_sync_count=0)
        store = self.again(store)
        records = store.get_records(OWNER, "d")
        assert {k: (r.sync_count, r.dirty) for k, r in records.items()} == {
            "a": (0, True),
            "b": (0, True),
        }
        state = store.get_dataset(OWNER, "d")
        assert state is not None and state.last_sync_count == 0

    def test_apply_sync_clears_deleted_pending(self, store: LocalStore) -> None:
        store.write_local(OWNER, "d", {"a": "1"}, T0)
        store.mark_dataset_deleted(OWNER, "d")
        store.apply_sync(OWNER, "d", [], clear_deleted_pending=True, last_sync_count=9)
        state = self.again(store).get_dataset(OWNER, "d")
        assert state is not None and (state.deleted_pending, state.last_sync_count) == (False, 9)

    # -- moving data --------------------------------------------------------------------

    def test_attach_identity_moves_provisional_data(self, store: LocalStore) -> None:
        guest = store.provisional_owner()
        store.write_local(guest, "a", {"k": "offline"}, T0)
        store.create_dataset(guest, "empty")
        store.attach_identity(OWNER)
        store = self.again(store)
        assert store.identity_id() == OWNER
        assert store.list_datasets(guest) == []
        assert [ds.name for ds in store.list_datasets(OWNER)] == ["a", "empty"]
        rec = store.get_record(OWNER, "a", "k")
        assert rec is not None and (rec.value, rec.dirty, rec.sync_count) == ("offline", True, 0)

    def test_attach_identity_merges_into_existing_dataset(self, store: LocalStore) -> None:
        guest = store.provisional_owner()
        synced(store, OWNER, "a", {"shared": "server", "theirs": "kept"}, 6)
        store.write_local(guest, "a", {"shared": "offline", "mine": "new"}, T0)
        store.attach_identity(OWNER)
        store = self.again(store)
        records = store.get_records(OWNER, "a")
        assert {k: (r.value, r.sync_count, r.dirty) for k, r in records.items()} == {
            "mine": ("new", 0, True),
            "shared": ("offline", 6, True),
            "theirs": ("kept", 6, False),
        }
        assert records["shared"].revision >= 1
        state = store.get_dataset(OWNER, "a")
        assert state is not None and state.last_sync_count == 6

    def test_rename_dataset(self, store: LocalStore) -> None:
        synced(store, OWNER, "a", {"x": "1", "gone": "2"}, 3)
        store.write_local(OWNER, "a", {"gone": None, "y": "new"}, T0)
        store.rename_dataset(OWNER, "a", "us-east-1:other", "a.old")
        store = self.again(store)
        assert store.list_datasets(OWNER) == []
        records = store.get_records("us-east-1:other", "a.old")
        assert {k: (r.value, r.sync_count, r.dirty) for k, r in records.items()} == {
            "x": ("1", 0, True),
            "y": ("new", 0, True),
        }
        state = store.get_dataset("us-east-1:other", "a.old")
        assert state is not None and state.last_sync_count == 0
        with pytest.raises(UsageError):
            store.rename_dataset(OWNER, "missing", OWNER, "b")
        with pytest.raises(InvalidNameError):
            store.rename_dataset("us-east-1:other", "a.old", OWNER, "bad name")

    def test_mark_dataset_deleted(self, store: LocalStore) -> None:
        synced(store, OWNER, "d", {"a": "1"}, 2)
        store.mark_dataset_deleted(OWNER, "d")
        store = self.again(store)
        assert store.get_records(OWNER, "d") == {}
        state = store.get_dataset(OWNER, "d")
        assert state is not None and (state.deleted_pending, state.last_sync_count) == (True, 2)
        assert store.has_unsynced_changes()

    def test_drop_dataset(self, store: LocalStore) -> None:
        store.write_local(OWNER, "d", {"a": "1"}, T0)
        store.drop_dataset(OWNER, "d")
        store = self.again(store)
        assert store.get_dataset(OWNER, "d") is None and store.get_records(OWNER, "d") == {}
        assert not store.has_unsynced_changes()

    def test_wipe_keeps_device_id(self, store: LocalStore) -> None:
        device = store.device_id()
        store.set_identity_id(OWNER)
        store.write_local(OWNER, "d", {"a": "1"}, T0)
        store.mark_dataset_deleted(OWNER, "e")
        store.wipe()
        store = self.again(store)
        assert (store.device_id(), store.identity_id()) == (device, None)
        assert store.list_datasets(OWNER) == [] and not store.has_unsynced_changes()

    # -- whose data a call reaches --------------------------------------------------------

    def test_resolve_owner_follows_moves_and_refuses_switches(self, store: LocalStore) -> None:
        provisional, guest, other = store.provisional_owner(), "eu-west-1:guest", "eu-west-1:b"
        assert store.current_owner() == store.resolve_owner(provisional) == provisional
        store.attach_identity(guest)
        store.set_identity_id(OWNER, moved_from=guest)  # a guest moved at login
        store = self.again(store)
        assert store.current_owner() == OWNER
        for claimed in (provisional, guest, OWNER):
            assert store.resolve_owner(claimed) == OWNER
        store.set_identity_id(other)  # an authenticated switch: nothing moves
        assert store.resolve_owner(other) == other
        for claimed in (provisional, guest, OWNER, "eu-west-1:stranger"):
            with pytest.raises(IdentityConflictError):
                store.resolve_owner(claimed)
        store.set_identity_id(OWNER)
        assert store.resolve_owner(guest) == OWNER  # back: the guest's move leads here again

    def test_known_identities_persist_until_wipe(self, store: LocalStore) -> None:
        assert store.known_identities() == {}
        store.remember_identity("eu-west-1:guest", {})
        store.remember_identity(OWNER, {"login.example": "digest", "other": None})
        store = self.again(store)
        assert store.known_identities() == {
            "eu-west-1:guest": {},
            OWNER: {"login.example": "digest", "other": None},
        }
        store.set_identity_id(OWNER, moved_from="eu-west-1:guest")
        store.wipe()
        store = self.again(store)
        assert store.known_identities() == {}
        with pytest.raises(IdentityConflictError):  # the move is forgotten too
            store.resolve_owner("eu-west-1:guest")

    def test_transaction_groups_calls(self, store: LocalStore) -> None:
        with store.transaction():
            owner = store.resolve_owner(store.provisional_owner())
            store.write_local(owner, "d", {"a": "1"}, T0)
            store.write_local(owner, "e", {"b": "2"}, T0)
        store = self.again(store)
        assert [ds.name for ds in store.list_datasets(store.provisional_owner())] == ["d", "e"]

    def test_failed_transaction_changes_nothing(self, store: LocalStore) -> None:
        store.write_local(OWNER, "d", {"a": "1"}, T0)
        before = snapshot(store, [OWNER, store.provisional_owner()])
        with pytest.raises(InvalidKeyError), store.transaction():
            store.write_local(OWNER, "d", {"a": "2", "b": "3"}, T0)
            store.set_identity_id(OWNER)
            store.remember_identity(OWNER, {})
            store.write_local(OWNER, "d", {"": "bad key"}, T0)
        store = self.assert_unchanged(store, before)
        assert store.known_identities() == {}

    # -- limits: exactly at a limit passes, one past fails and changes nothing -----------

    def test_dataset_count_limit(self, store: LocalStore) -> None:
        for i in range(DEFAULT_LIMITS.max_datasets - 1):
            store.write_local(OWNER, f"d{i}", {"k": "v"}, T0)
        store.create_dataset(OWNER, "last")
        store.write_local("us-east-1:other", "d", {"k": "v"}, T0)  # other owners don't count
        before = snapshot(store, [OWNER])
        with pytest.raises(DatasetLimitExceededError) as info:
            store.write_local(OWNER, "one-more", {"k": "v"}, T0)
        assert (info.value.limit, info.value.attempted) == (20, 21)
        with pytest.raises(DatasetLimitExceededError):
            store.create_dataset(OWNER, "one-more")
        with pytest.raises(DatasetLimitExceededError):
            store.write_local(OWNER, "one-more", {"k": None}, T0)
        store = self.assert_unchanged(store, before)
        store.write_local(OWNER, "d0", {"k2": "v"}, T0)  # existing datasets still take writes

    def test_deleted_pending_datasets_do_not_count(self, store: LocalStore) -> None:
        for i in range(DEFAULT_LIMITS.max_datasets):
            store.create_dataset(OWNER, f"d{i}")
        store.mark_dataset_deleted(OWNER, "d0")
        store.write_local(OWNER, "replacement", {"k": "v"}, T0)
        with pytest.raises(DatasetLimitExceededError):  # writing to it makes it count again
            store.write_local(OWNER, "d0", {"k": "v"}, T0)
        store.drop_dataset(OWNER, "d1")
        store.write_local(OWNER, "d0", {"k": "v"}, T0)
        state = store.get_dataset(OWNER, "d0")
        assert state is not None and state.deleted_pending

    def test_record_count_limit(self, store: LocalStore) -> None:
        limit = DEFAULT_LIMITS.max_records
        synced(store, OWNER, "d", {"synced": "s"}, 1)
        store.write_local(OWNER, "d", {f"k{i}": "v" for i in range(limit - 1)}, T0)
        before = snapshot(store, [OWNER])
        with pytest.raises(RecordLimitExceededError) as info:
            store.write_local(OWNER, "d", {"k0": "replaced", "one-more": "v"}, T0)
        assert (info.value.limit, info.value.attempted) == (limit, limit + 1)
        store = self.assert_unchanged(store, before)
        store.write_local(OWNER, "d", {"k0": "replace is fine"}, T0)
        store.write_local(OWNER, "d", {"synced": None, "swap": "v"}, T0)  # tombstones don't count
        assert sum(r.value is not None for r in store.get_records(OWNER, "d").values()) == limit

    def test_dataset_size_limit_with_multibyte_text(self, store: LocalStore) -> None:
        # "é" is 2 UTF-8 bytes, "€" 3, "😀" 4.
        value = "€" * 349_524 + "é"  # 1,048,574 bytes
        store.write_local(OWNER, "d", {"é": value}, T0)  # key 2 bytes: exactly the limit
        assert store.size_in_bytes(OWNER, "d") == MAX_BYTES
        before = snapshot(store, [OWNER])
        with pytest.raises(DatasetSizeLimitExceededError) as info:
            store.write_local(OWNER, "d", {"a": ""}, T0)
        assert (info.value.limit, info.value.attempted) == (MAX_BYTES, MAX_BYTES + 1)
        with pytest.raises(DatasetSizeLimitExceededError):  # a replace counts the difference
            store.write_local(OWNER, "d", {"é": value[:-1] + "€"}, T0)
        store = self.assert_unchanged(store, before)
        store.write_local(OWNER, "d", {"é": "😀" * 262_143 + "é"}, T0)  # same size: allowed
        store.write_local(OWNER, "d", {"é": None, "😀": "x"}, T0)
        assert store.size_in_bytes(OWNER, "d") == 5

    @pytest.mark.parametrize("key", ["é" * 64, "€" * 42 + "é", "😀" * 32, "k" * 128, "a"])
    def test_key_at_limit(self, store: LocalStore, key: str) -> None:
        store.write_local(OWNER, "d", {key: "v"}, T0)
        assert list(self.again(store).get_records(OWNER, "d")) == [key]

    @pytest.mark.parametrize("key", ["é" * 64 + "a", "😀" * 32 + "a", "k" * 129, "", "\udc80"])
    def test_key_past_limit(self, store: LocalStore, key: str) -> None:
        store.write_local(OWNER, "d", {"ok": "v"}, T0)
        before = snapshot(store, [OWNER])
        with pytest.raises(InvalidKeyError):
            store.write_local(OWNER, "d", {"fine": "v", key: "v"}, T0)
        self.assert_unchanged(store, before)

    @pytest.mark.parametrize("name", ["a" * 128, "Az09_.:-", "x"])
    def test_name_at_limit(self, store: LocalStore, name: str) -> None:
        store.write_local(OWNER, name, {"k": "v"}, T0)
        assert [ds.name for ds in self.again(store).list_datasets(OWNER)] == [name]

    @pytest.mark.parametrize("name", ["a" * 129, "", "a b", "é", "a/b"])
    def test_name_past_limit(self, store: LocalStore, name: str) -> None:
        before = snapshot(store, [OWNER])
        for call in (
            lambda: store.write_local(OWNER, name, {"k": "v"}, T0),
            lambda: store.create_dataset(OWNER, name),
            lambda: store.mark_dataset_deleted(OWNER, name),
        ):
            with pytest.raises(InvalidNameError):
                call()
        store = self.assert_unchanged(store, before)
        assert store.list_datasets(OWNER) == []

    @pytest.mark.parametrize("value", [5, b"bytes", {"a": 1}, "\ud800"])
    def test_value_must_be_text(self, store: LocalStore, value: object) -> None:
        store.write_local(OWNER, "d", {"ok": "v"}, T0)
        before = snapshot(store, [OWNER])
        with pytest.raises(InvalidValueError):
            store.write_local(OWNER, "d", {"fine": "v", "bad": value}, T0)  # type: ignore[dict-item]
        self.assert_unchanged(store, before)

    def test_limit_errors_are_usage_errors(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, Limits(max_records=1, max_dataset_bytes=4))
        with pytest.raises(LimitExceededError):
            store.write_local(OWNER, "d", {"a": "1", "b": "2"}, T0)
        with pytest.raises(DatasetSizeLimitExceededError):
            store.write_local(OWNER, "d", {"a": "1234"}, T0)
        assert store.list_datasets(OWNER) == []
        store.close()
