"""The `LocalStore` contract for sync bases: the value a dirty record's edit started from.

Mix `SyncBaseContract` into a `cogsync.testing.store_contract.StoreContract` subclass (it
uses that class's ``store`` fixture and ``again``)::

    class TestMyStore(StoreContract, SyncBaseContract):
        ...

Needs pytest (a test dependency, not a runtime one).
"""

from __future__ import annotations

from cogsync.models import Record, RecordWrite
from cogsync.store.base import LocalStore
from cogsync.testing.store_contract import OWNER, T0, synced

__all__ = ["SyncBaseContract"]


class SyncBaseContract:
    """How every store keeps `LocalStore.get_bases` current through writes and syncs."""

    def again(self, store: LocalStore) -> LocalStore:
        """Reopen ``store`` (supplied by `StoreContract`)."""
        raise NotImplementedError

    def test_clean_records_have_no_base(self, store: LocalStore) -> None:
        synced(store, OWNER, "d", {"a": "1"}, 1)
        assert store.get_bases(OWNER, "d") == {}

    def test_first_edit_keeps_the_synced_value_as_base(self, store: LocalStore) -> None:
        synced(store, OWNER, "d", {"a": "1", "b": "2", "c": "3"}, 4)
        store.write_local(OWNER, "d", {"a": "10", "b": None, "new": "n"}, T0)
        store.write_local(OWNER, "d", {"a": "11", "c": "30", "x": "y"}, T0)
        assert self.again(store).get_bases(OWNER, "d") == {
            "a": "1",  # still the synced value after the second edit
            "b": "2",
            "c": "3",
            "new": None,  # never synced: starts from nothing
            "x": None,
        }

    def test_tombstone_base_is_absent(self, store: LocalStore) -> None:
        synced(store, OWNER, "d", {"a": "1"}, 1)
        store.apply_sync(OWNER, "d", [RecordWrite(Record("a", None, 2), None)])
        store.write_local(OWNER, "d", {"a": "back"}, T0)
        assert store.get_bases(OWNER, "d") == {"a": None}

    def test_clean_sync_write_drops_the_base(self, store: LocalStore) -> None:
        synced(store, OWNER, "d", {"a": "1"}, 1)
        store.write_local(OWNER, "d", {"a": "2"}, T0)
        store.apply_sync(OWNER, "d", [RecordWrite(Record("a", "2", 2), 1)])
        assert store.get_bases(OWNER, "d") == {}
        store.write_local(OWNER, "d", {"a": "3"}, T0)
        assert self.again(store).get_bases(OWNER, "d") == {"a": "2"}

    def test_dirty_sync_write_stores_its_base(self, store: LocalStore) -> None:
        synced(store, OWNER, "d", {"a": "1"}, 1)
        store.write_local(OWNER, "d", {"a": "mine"}, T0)
        settled = RecordWrite(Record("a", "merged", 5, dirty=True), 1, base="theirs")
        assert store.apply_sync(OWNER, "d", [settled]) == []
        assert self.again(store).get_bases(OWNER, "d") == {"a": "theirs"}

    def test_acknowledged_value_becomes_base_of_edit_made_meanwhile(
        self, store: LocalStore
    ) -> None:
        store.write_local(OWNER, "d", {"k": "pushed", "gone": "pushed too"}, T0)
        store.write_local(OWNER, "d", {"k": "edited during push", "gone": None}, T0)
        acks = [
            RecordWrite(Record("k", "pushed", 7), 1, keep_sync_count_on_mismatch=True),
            RecordWrite(Record("gone", "pushed too", 7), 1, keep_sync_count_on_mismatch=True),
        ]
        assert sorted(store.apply_sync(OWNER, "d", acks)) == ["gone", "k"]
        assert self.again(store).get_bases(OWNER, "d") == {"gone": "pushed too", "k": "pushed"}

    def test_reset_sync_counts_starts_every_record_from_nothing(self, store: LocalStore) -> None:
        synced(store, OWNER, "d", {"a": "1", "b": "2"}, 4)
        store.write_local(OWNER, "d", {"b": "20"}, T0)
        store.apply_sync(OWNER, "d", [], reset_sync_counts=True, last_sync_count=0)
        assert self.again(store).get_bases(OWNER, "d") == {"a": None, "b": None}

    def test_moved_records_keep_the_target_base(self, store: LocalStore) -> None:
        guest = store.provisional_owner()
        synced(store, OWNER, "a", {"clean": "server", "edited": "server"}, 6)
        store.write_local(OWNER, "a", {"edited": "account edit"}, T0)
        store.write_local(guest, "a", {"clean": "g1", "edited": "g2", "mine": "g3"}, T0)
        store.attach_identity(OWNER)
        store = self.again(store)
        assert store.get_bases(OWNER, "a") == {
            "clean": "server",
            "edited": "server",
            "mine": None,
        }
        assert store.get_bases(guest, "a") == {}

    def test_failed_transaction_restores_bases(self, store: LocalStore) -> None:
        synced(store, OWNER, "d", {"a": "1"}, 1)
        try:
            with store.transaction():
                store.write_local(OWNER, "d", {"a": "2"}, T0)
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        assert store.get_bases(OWNER, "d") == {}
        assert store.dirty_records(OWNER, "d") == []
