"""Opening a device file and waiting out other processes' locks on it."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cogsync.exceptions import ConfigError

__all__ = ["BUSY_TIMEOUT_SECONDS", "connect", "retry_busy"]

BUSY_TIMEOUT_SECONDS = 30.0
"""How long a write waits for another process's lock on the file before failing."""

_T = TypeVar("_T")
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    """A connection to ``path``; read-only ones never create or change a file."""
    if not read_only:
        return sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
    if not path.is_file():
        raise ConfigError(f"no device file at {path}")
    # No write-ahead log beside the file: nobody has it open, so read it as immutable
    # (a read-only WAL connection would otherwise leave -wal and -shm files behind).
    wal = path.with_name(path.name + "-wal")
    mode = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    uri = f"{path.resolve().as_uri()}?{mode}"
    try:
        return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open {path} read-only: {exc}") from exc


def retry_busy(step: Callable[[], _T]) -> _T:
    """Run ``step()``, retrying while another connection holds the file locked."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    pause = 0.001
    while True:
        try:
            return step()
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code not in _BUSY_CODES or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
