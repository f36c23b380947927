"""SQLite failures at run time, as cogsync errors that say what to do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cogsync.exceptions import StorageCorruptError, StorageError, StorageFullError

__all__ = ["storage_error"]

_FULL = {sqlite3.SQLITE_FULL}
_CORRUPT = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def storage_error(exc: sqlite3.Error, path: Path) -> StorageError:
    """The typed error for ``exc``, raised by SQLite while using the device file ``path``."""
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    if code in _FULL:
        return StorageFullError(
            f"the disk holding {path} is full ({exc}): nothing was written; free some space "
            "and retry",
            path=str(path),
        )
    if code in _CORRUPT:
        return StorageCorruptError(
            f"the device file {path} is damaged ({exc}): run `cogsync inspect {path}` to see "
            "what can still be read, or move the file aside and sync again to restore the "
            "data from the server (unsynced changes in it are lost)",
            path=str(path),
        )
    return StorageError(
        f"the device file {path} failed ({exc}): nothing was written; check that the file "
        "and its folder are writable and the disk is healthy",
        path=str(path),
    )
