"""Local stores: where a device keeps its datasets (SQLite file, or memory for tests)."""

from cogsync.store.base import LocalStore
from cogsync.store.memory import MemoryStore
from cogsync.store.sqlite import SQLiteStore

__all__ = ["LocalStore", "MemoryStore", "SQLiteStore"]
