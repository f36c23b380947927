"""Local stores: where a device keeps its datasets (SQLite file, or memory for tests)."""

from cogsync.store.base import LocalStore

__all__ = ["LocalStore"]
