"""The schemas of the server's two SQLite files, built and upgraded by named migrations.

Each migration is a function taking the open `sqlite3.Connection`; they run in the order of
`SYNC_MIGRATIONS` (``DIR/sync.db``, owned by `ServerStorage`) or `IDENTITY_MIGRATIONS`
(``DIR/identity.db``, owned by `IdentityDatabase`), and each applied name is recorded in the
file's ``_migrations`` table. Rules: a migration never drops or rewrites data, and a shipped
migration is never edited -- add a new one instead.

The first migrations create exactly the tables servers created before migrations were
named (``CREATE ... IF NOT EXISTS``), so such a file upgrades by recording them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from cogsync._awsdatetime import format_datetime
from cogsync.exceptions import ConfigError
from cogsync.models import utcnow

__all__ = [
    "IDENTITY_MIGRATIONS",
    "SYNC_MIGRATIONS",
    "Migration",
    "applied_migrations",
    "m001_identity_tables",
    "m001_sync_tables",
    "m002_bounded_history",
    "m003_change_log_key_totals",
    "m004_records_in_rowid_table",
    "migrate",
]

Migration = Callable[[sqlite3.Connection], None]


def _run_script(db: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def m001_sync_tables(db: sqlite3.Connection) -> None:
    """Create ``datasets``, ``records`` (indexed by sync count), ``requests``, ``change_log``."""
    _run_script(
        db,
        """
        CREATE TABLE IF NOT EXISTS datasets (
            identity_id TEXT NOT NULL, name TEXT NOT NULL, sync_count INTEGER NOT NULL,
            size_in_bytes INTEGER NOT NULL, record_count INTEGER NOT NULL, last_modified INTEGER,
            deleted INTEGER NOT NULL DEFAULT 0, merged_into TEXT,
            PRIMARY KEY (identity_id, name)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS records (
            identity_id TEXT NOT NULL, dataset TEXT NOT NULL, key TEXT NOT NULL, value TEXT,
            sync_count INTEGER NOT NULL, last_modified_date INTEGER NOT NULL,
            last_modified_by TEXT, device_last_modified_date INTEGER,
            PRIMARY KEY (identity_id, dataset, key)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS records_by_sync_count
            ON records (identity_id, dataset, sync_count, key);
        CREATE TABLE IF NOT EXISTS requests (
            identity_id TEXT NOT NULL, client_request_id TEXT NOT NULL, kind TEXT NOT NULL,
            dataset TEXT NOT NULL, result TEXT NOT NULL, created INTEGER NOT NULL,
            PRIMARY KEY (identity_id, client_request_id)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS change_log (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, identity_id TEXT NOT NULL,
            dataset TEXT NOT NULL, sync_count INTEGER NOT NULL, deleted INTEGER NOT NULL,
            keys TEXT NOT NULL, client_request_id TEXT, time INTEGER NOT NULL
        )
        """,
    )


def m002_bounded_history(db: sqlite3.Connection) -> None:
    """Order remembered requests per dataset (``requests.seq``) and index both histories.

    `cogsync.server.requests_log` keeps only the newest request ids of each dataset and
    `cogsync.server.changes` drops change-log entries past their age; these indexes find
    what to drop without a scan. Rows written before have no ``seq`` and go first.
    """
    _run_script(
        db,
        """
        ALTER TABLE requests ADD COLUMN seq INTEGER;
        CREATE INDEX requests_by_dataset ON requests (identity_id, dataset, seq);
        CREATE INDEX requests_by_age ON requests (created);
        CREATE INDEX change_log_by_time ON change_log (time)
        """,
    )


def m003_change_log_key_totals(db: sqlite3.Connection) -> None:
    """Number each change-log entry with the keys its dataset has logged so far
    (``keys_total``, running, an entry counting at least 1) and index it by dataset, so
    `cogsync.server.changes` drops a dataset's oldest entries past a key budget without a
    scan. Existing entries are numbered in order."""
    _run_script(
        db,
        """
        ALTER TABLE change_log ADD COLUMN keys_total INTEGER;
        UPDATE change_log SET keys_total = w.total FROM (
            SELECT seq, SUM(max(1, json_array_length(keys))) OVER (
                PARTITION BY identity_id, dataset ORDER BY seq) AS total
            FROM change_log) AS w
        WHERE w.seq = change_log.seq;
        CREATE INDEX change_log_by_dataset ON change_log (identity_id, dataset, keys_total)
        """,
    )


def m001_identity_tables(db: sqlite3.Connection) -> None:
    """Create ``meta``, ``identities``, ``logins`` and ``credentials`` with their indexes."""
    _run_script(
        db,
        """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS identities (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            identity_id TEXT NOT NULL UNIQUE,
            created REAL NOT NULL,
            modified REAL NOT NULL
        );
        CREATE TABLE IF NOT EXISTS logins (
            provider TEXT NOT NULL,
            subject TEXT NOT NULL,
            identity_id TEXT NOT NULL REFERENCES identities(identity_id),
            PRIMARY KEY (provider, subject)
        );
        CREATE INDEX IF NOT EXISTS logins_by_identity ON logins(identity_id);
        CREATE TABLE IF NOT EXISTS credentials (
            access_key_id TEXT PRIMARY KEY,
            identity_id TEXT NOT NULL,
            token_sha256 TEXT NOT NULL,
            issued_at REAL NOT NULL,
            expires_at REAL NOT NULL
        );
        CREATE INDEX IF NOT EXISTS credentials_by_expiry ON credentials(expires_at)
        """,
    )


def m004_records_in_rowid_table(db: sqlite3.Connection) -> None:
    """Move ``records`` into an ordinary (rowid) table with the same columns, key and index.

    In a ``WITHOUT ROWID`` table a row keeps at most ~1,000 bytes in its 4 KB page, so every
    record of about 1 KB or more spilled a few hundred bytes into an overflow page of its
    own: ~4.8 times the bytes of the data written, synced and checkpointed. A rowid table
    keeps rows up to ~4 KB in the page. Every record is copied unchanged.
    """
    _run_script(
        db,
        """
        CREATE TABLE records_moved (
            identity_id TEXT NOT NULL, dataset TEXT NOT NULL, key TEXT NOT NULL, value TEXT,
            sync_count INTEGER NOT NULL, last_modified_date INTEGER NOT NULL,
            last_modified_by TEXT, device_last_modified_date INTEGER,
            PRIMARY KEY (identity_id, dataset, key)
        );
        INSERT INTO records_moved SELECT identity_id, dataset, key, value, sync_count,
            last_modified_date, last_modified_by, device_last_modified_date FROM records
            ORDER BY identity_id, dataset, key;
        DROP TABLE records;
        ALTER TABLE records_moved RENAME TO records;
        CREATE INDEX records_by_sync_count ON records (identity_id, dataset, sync_count, key)
        """,
    )


SYNC_MIGRATIONS: tuple[Migration, ...] = (
    m001_sync_tables,
    m002_bounded_history,
    m003_change_log_key_totals,
    m004_records_in_rowid_table,
)
"""The migrations of the data file (``sync.db``), in order."""
IDENTITY_MIGRATIONS: tuple[Migration, ...] = (m001_identity_tables,)
"""The migrations of the identity file (``identity.db``), in order."""


def applied_migrations(db: sqlite3.Connection) -> list[str]:
    """Names of the migrations recorded in ``db``, in the order they were applied."""
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='_migrations'"
    ).fetchone()
    if exists is None:
        return []
    return [str(row[0]) for row in db.execute("SELECT name FROM _migrations ORDER BY rowid")]


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration], what: str) -> list[str]:
    """Apply the pending ``migrations`` to ``db`` in one transaction; return their names.

    ``db`` must be in autocommit mode (``isolation_level=None``). ``what`` names the file in
    errors. Raises `ConfigError` if the file records a migration this version does not know
    (a newer cogsync wrote it).
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS _migrations "
            "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = set(applied_migrations(db))
        unknown = sorted(done - {m.__name__ for m in migrations})
        if unknown:
            raise ConfigError(
                f"the {what} was upgraded by a newer cogsync (unknown migrations {unknown}): "
                "upgrade cogsync to open it"
            )
        pending = [m for m in migrations if m.__name__ not in done]
        stamp = format_datetime(utcnow())
        for migration in pending:
            migration(db)
            db.execute("INSERT INTO _migrations VALUES (?, ?)", (migration.__name__, stamp))
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return [m.__name__ for m in pending]
