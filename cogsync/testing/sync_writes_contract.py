"""The `LocalStore` contract for `SyncWrites`: pulled records given apart from the writes.

Mix `SyncWritesContract` into a `cogsync.testing.store_contract.StoreContract` subclass
(it uses that class's ``store`` fixture, ``again`` and ``assert_unchanged``)::

    class TestMyStore(StoreContract, SyncWritesContract):
        ...

Needs pytest (a test dependency, not a runtime one).
"""

from __future__ import annotations

from typing import Any

import pytest

from cogsync.exceptions import InvalidKeyError, InvalidValueError
from cogsync.models import PulledRecords, Record, RecordWrite, SyncWrites, record_rows
from cogsync.store.base import LocalStore
from cogsync.testing.store_contract import OWNER, T0, snapshot, synced

__all__ = ["SyncWritesContract"]

T1 = T0.replace(year=T0.year + 1)


class SyncWritesContract:
    """Every store applies each pulled record of a `SyncWrites` as ``RecordWrite(r, 0)``."""

    def again(self, store: LocalStore) -> LocalStore:
        """Reopen ``store`` (supplied by `StoreContract`)."""
        raise NotImplementedError

    def assert_unchanged(self, store: LocalStore, before: dict[str, Any]) -> LocalStore:
        """Check nothing changed (supplied by `StoreContract`)."""
        raise NotImplementedError

    def test_pulled_records_apply_as_writes_expecting_revision_0(self, store: LocalStore) -> None:
        for name in ("plain", "split", "rows"):
            synced(store, OWNER, name, {"a": "1"}, 1)
            store.write_local(OWNER, name, {"k": "the app wrote it meanwhile"}, T0)
        pulled = [
            Record("k", "server", 3, T1, "other"),
            Record("new", "server", 2, T1, "other", T0),
            Record("gone", None, 4, T1, "other"),
        ]
        ours = [RecordWrite(Record("a", "2", 5, T1, "other"), 0)]
        plain = [*ours, *(RecordWrite(r, 0) for r in pulled)]
        assert store.apply_sync(OWNER, "plain", plain, last_sync_count=5) == ["k"]
        assert store.apply_sync(OWNER, "split", SyncWrites(ours, pulled), last_sync_count=5) == [
            "k"
        ]
        rows = SyncWrites(ours, PulledRecords(record_rows(pulled)))
        assert store.apply_sync(OWNER, "rows", rows, last_sync_count=5) == ["k"]
        store = self.again(store)
        for name in ("split", "rows"):
            assert store.get_records(OWNER, name) == store.get_records(OWNER, "plain")
            assert store.get_bases(OWNER, name) == store.get_bases(OWNER, "plain")
            split, same = store.get_dataset(OWNER, name), store.get_dataset(OWNER, "plain")
            assert split is not None and same is not None
            assert split.last_sync_count == same.last_sync_count == 2  # below the skipped "k"
            assert split.last_modified == same.last_modified == T1
        records = store.get_records(OWNER, "rows")
        assert (records["new"].value, records["new"].dirty, records["new"].revision) == (
            "server",
            False,
            0,
        )
        assert records["gone"].value is None and not records["gone"].dirty
        assert (records["k"].value, records["k"].dirty) == ("the app wrote it meanwhile", True)

    def test_pulled_records_are_checked_like_writes(self, store: LocalStore) -> None:
        synced(store, OWNER, "d", {"a": "1"}, 1)
        before = snapshot(store, [OWNER, store.provisional_owner()])
        with pytest.raises(InvalidKeyError):
            store.apply_sync(OWNER, "d", SyncWrites(pulled=[Record("", "v", 2)]), last_sync_count=2)
        bad = Record("b", 5)  # type: ignore[arg-type]
        with pytest.raises(InvalidValueError):
            store.apply_sync(OWNER, "d", SyncWrites([RecordWrite(Record("a", "2", 2), 0)], [bad]))
        for row in [("", "v", 2, None, None, None), ("b", 5, 2, None, None, None)]:
            with pytest.raises((InvalidKeyError, InvalidValueError)):
                pulled = PulledRecords([("c", "ok", 2, None, None, None), row])
                store.apply_sync(OWNER, "d", SyncWrites(pulled=pulled), last_sync_count=2)
        self.assert_unchanged(store, before)
