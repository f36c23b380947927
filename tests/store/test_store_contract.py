"""Run the shared `LocalStore` contract against both stores."""

from __future__ import annotations

from pathlib import Path

from cogsync.limits import Limits
from cogsync.store.base import LocalStore
from cogsync.store.memory import MemoryStore
from cogsync.store.sqlite import SQLiteStore
from cogsync.testing.base_contract import SyncBaseContract
from cogsync.testing.store_contract import StoreContract
from cogsync.testing.sync_writes_contract import SyncWritesContract


class TestMemoryStore(StoreContract, SyncBaseContract, SyncWritesContract):
    def make_store(self, directory: Path, limits: Limits) -> LocalStore:
        return MemoryStore(limits=limits)


class TestSQLiteStore(StoreContract, SyncBaseContract, SyncWritesContract):
    def make_store(self, directory: Path, limits: Limits) -> LocalStore:
        return SQLiteStore(directory / "device.db", limits=limits)

    def reopen(self, store: LocalStore) -> LocalStore:
        assert isinstance(store, SQLiteStore)
        store.close()
        return SQLiteStore(store.path, limits=store.limits)
