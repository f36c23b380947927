"""``cogsync backup --data DIR OUT``: a consistent copy of a server's data directory.

Each SQLite file (``identity.db``, ``sync.db``) is copied with SQLite's online backup API
in one step: the copy is the database as of one read transaction, so it holds every batch
committed (acknowledged to a client) before the backup started, and the server keeps
serving and writing meanwhile (WAL mode: readers never block the writer). ``admin.json``
and ``cogsync.json`` are copied as they are. Each copy is checked with
``PRAGMA integrity_check``. Restore by stopping the server and pointing ``--data`` at OUT.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from cogsync.exceptions import ConfigError

__all__ = ["DATABASES", "backup_data_dir"]

DATABASES = ("identity.db", "sync.db")
"""The SQLite files of a data directory."""

_PLAIN_FILES = ("admin.json", "cogsync.json")


def _copy_database(source: Path, target: Path) -> None:
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open {source}: {exc}") from exc
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # one step: a single consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot back up {source}: {exc}") from exc
    finally:
        src.close()
    if check != "ok":
        raise ConfigError(f"the backup of {source} failed its integrity check: {check}")


def backup_data_dir(data: Path, out: Path) -> list[Path]:
    """Copy the data directory ``data`` to the new directory ``out``; returns the files."""
    if not (data / "sync.db").is_file():
        raise ConfigError(f"{data} is not a cogsync serve data directory (no sync.db)")
    if out.exists():
        raise ConfigError(f"{out} exists: back up into a new directory")
    try:
        out.mkdir(parents=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create {out}: {exc.strerror}") from exc
    written = []
    for name in DATABASES:
        if (data / name).is_file():
            _copy_database(data / name, out / name)
            written.append(out / name)
    for name in _PLAIN_FILES:
        if (data / name).is_file():
            shutil.copy2(data / name, out / name)  # admin.json keeps its 0600 mode
            written.append(out / name)
    return written
