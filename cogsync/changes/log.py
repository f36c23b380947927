"""`ChangeLogReader`: the change log of a `cogsync serve` data directory, opened read-only.

The server appends one entry per accepted batch to ``change_log`` in ``DIR/sync.db`` inside
the batch's own transaction, so entries become visible in sequence order and never out of
it; a reader on its own read-only connection (WAL mode) never blocks the server.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cogsync.exceptions import ConfigError
from cogsync.server.changes import ChangeEntry, read_change_log

__all__ = ["ChangeLogReader"]


class ChangeLogReader:
    """Reads ``DIR/sync.db``'s change log without writing to it.

    Args:
        data_dir: the ``--data`` directory of `cogsync serve`.

    Raises:
        ConfigError: the directory holds no server data file.
    """

    def __init__(self, data_dir: str | Path) -> None:
        path = Path(data_dir) / "sync.db"
        if not path.is_file():
            raise ConfigError(
                f"{path} does not exist: pass the --data directory of `cogsync serve`"
            )
        try:
            self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            self._db.execute("PRAGMA busy_timeout = 5000")
            self._db.execute("SELECT 1 FROM change_log LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot read the change log of {path}: {exc}") from exc

    def read(self, after_seq: int = 0, limit: int = 500) -> list[ChangeEntry]:
        """The entries after ``after_seq``, oldest first, at most ``limit``."""
        try:
            return read_change_log(self._db, after_seq, limit)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot read the change log: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
