"""The schema of a device's SQLite store, built and upgraded by named migrations.

Each migration is a function taking a `sqlite_utils.Database`; they run in the order of
`MIGRATIONS` and each applied name is recorded in the ``_migrations`` table. Rules: a
migration never drops or rewrites user data (unsynced records must survive every
upgrade), and a shipped migration is never edited -- add a new one instead.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from cogsync.exceptions import ConfigError
from cogsync.models import utcnow

__all__ = [
    "MIGRATIONS",
    "Migration",
    "applied_migrations",
    "check_current",
    "m001_initial",
    "m002_revisions_and_totals",
    "m003_sync_base",
    "m004_dirty_index",
    "m005_sent_records",
    "migrate",
]

Migration = Callable[[sqlite_utils.Database], None]


def m001_initial(db: sqlite_utils.Database) -> None:
    """Create ``meta`` (device and identity ids), ``datasets`` and ``records``."""
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("datasets").create(
        {
            "owner": str,
            "name": str,
            "last_sync_count": int,
            "deleted_pending": int,
            "last_modified": str,
        },
        pk=("owner", "name"),
        not_null={"owner", "name", "last_sync_count", "deleted_pending"},
        defaults={"last_sync_count": 0, "deleted_pending": 0},
    )
    db.table("records").create(
        {
            "owner": str,
            "dataset": str,
            "key": str,
            "value": str,
            "sync_count": int,
            "last_modified_date": str,
            "last_modified_by": str,
            "device_last_modified_date": str,
            "dirty": int,
        },
        pk=("owner", "dataset", "key"),
        not_null={"owner", "dataset", "key", "sync_count", "dirty"},
        defaults={"sync_count": 0, "dirty": 0},
    )


def m002_revisions_and_totals(db: sqlite_utils.Database) -> None:
    """Add the per-record local ``revision`` and per-dataset live totals.

    Records that already exist start at revision 1, so a sync guard written for an absent
    record (revision 0) never matches them. ``record_count`` and ``size_bytes`` (UTF-8
    bytes of live keys and values) let a write check the limits without scanning. (No
    index on ``dirty``: keeping one current costs more per write than the scans it saves.)
    """
    db.table("records").add_column("revision", int, not_null_default=0)
    db.execute("UPDATE records SET revision = 1")
    db.table("datasets").add_column("record_count", int, not_null_default=0)
    db.table("datasets").add_column("size_bytes", int, not_null_default=0)
    db.execute(
        "UPDATE datasets SET record_count = (SELECT count(r.value) FROM records AS r"
        "  WHERE r.owner = datasets.owner AND r.dataset = datasets.name),"
        " size_bytes = (SELECT CAST(total(length(CAST(r.key AS BLOB))"
        "  + length(CAST(r.value AS BLOB))) AS INTEGER) FROM records AS r"
        "  WHERE r.owner = datasets.owner AND r.dataset = datasets.name)"
    )


def m003_sync_base(db: sqlite_utils.Database) -> None:
    """Add each dirty record's base: the value it had on the server when the edit began.

    ``base_value`` is that value (NULL: absent or removed) and ``base_known`` says whether
    it is known. Dirty records that never synced (sync count 0) are known to start from
    nothing; other dirty records keep no base (a merge of them falls back to a resolver).
    Values and dirty flags are untouched.
    """
    db.table("records").add_column("base_value", str)
    db.table("records").add_column("base_known", int, not_null_default=0)
    db.execute("UPDATE records SET base_known = 1 WHERE dirty = 1 AND sync_count = 0")


def m004_dirty_index(db: sqlite_utils.Database) -> None:
    """Index the dirty records alone (a partial index), so a sync finds what it must push.

    Without it every sync and `synchronize_all` scanned whole datasets for the few dirty
    records; the index holds only dirty rows, so clean writes never touch it.
    """
    db.execute(
        "CREATE INDEX IF NOT EXISTS records_dirty ON records (owner, dataset, key) WHERE dirty = 1"
    )


def m005_sent_records(db: sqlite_utils.Database) -> None:
    """Add ``sent``: 1 once a push carrying a never-synced record may have reached the server.

    Removing a never-synced record deletes it outright only while ``sent`` is 0; otherwise
    the push's outcome is unknown (its answer was lost) and a dirty tombstone is kept so
    the removal reaches the server. Existing records start at 0 (as before this column).
    """
    db.table("records").add_column("sent", int, not_null_default=0)


MIGRATIONS: tuple[Migration, ...] = (
    m001_initial,
    m002_revisions_and_totals,
    m003_sync_base,
    m004_dirty_index,
    m005_sent_records,
)


def applied_migrations(db: sqlite_utils.Database) -> list[str]:
    """Names of the migrations recorded in ``db``, in the order they were applied."""
    if not db.table("_migrations").exists():
        return []
    return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY rowid")]


def check_current(db: sqlite_utils.Database, path: object) -> None:
    """Raise `ConfigError` unless ``db`` is a cogsync device file with every migration applied.

    For read-only opens, which must not upgrade (or create) anything.
    """
    if not db.table("_migrations").exists() or not db.table("meta").exists():
        raise ConfigError(
            f"{path} is not a cogsync device file (it has no cogsync tables): pass the path "
            "of a file a cogsync client created"
        )
    done = applied_migrations(db)
    known = [m.__name__ for m in MIGRATIONS]
    if [name for name in done if name not in known]:
        raise ConfigError(f"{path} was upgraded by a newer cogsync: upgrade cogsync to read it")
    if done != known:
        raise ConfigError(
            f"{path} was written by an older cogsync: open it once with a cogsync client "
            "to upgrade it, then read it"
        )


def migrate(db: sqlite_utils.Database, *, upto: str | None = None) -> list[str]:
    """Apply the pending migrations (all, or up to and including ``upto``); return their names.

    Runs inside the caller's transaction, so an upgrade is all-or-nothing. Raises
    `ConfigError` if the file records a migration this version does not know (it was
    written by a newer cogsync).
    """
    if not db.table("_migrations").exists():
        db.table("_migrations").create({"name": str, "applied_at": str}, pk="name")
    done = applied_migrations(db)
    known = [m.__name__ for m in MIGRATIONS]
    unknown = [name for name in done if name not in known]
    if unknown:
        raise ConfigError(
            f"the store file was upgraded by a newer cogsync (unknown migrations {unknown}): "
            "upgrade cogsync to open it"
        )
    applied = []
    for migration in MIGRATIONS:
        name = migration.__name__
        if name not in done:
            migration(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (name, utcnow().isoformat()),
            )
            applied.append(name)
        if name == upto:
            break
    return applied
