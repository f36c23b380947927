"""The SQL a `SQLiteStore` runs, kept apart from the code that runs it.

Column lists fix the order in which rows are read back; the statements are plain SQL with
``?`` or ``:name`` parameters, prepared once per connection by SQLite's statement cache.
"""

from __future__ import annotations

from cogsync.limits import RECORD_SIZE_SQL

__all__ = [
    "COUNTED_DATASETS",
    "DATASET_COLUMNS",
    "FINISH_DATASET",
    "INSERT_RECORD",
    "LATER",
    "LOCAL_CHANGE",
    "MARK_SENT",
    "MAX_REVISION",
    "MOVE_DATASET",
    "MOVE_MERGE",
    "MOVE_NEW",
    "RAISE_FLOOR",
    "RECORD_COLUMNS",
    "RESET_SYNC_COUNTS",
    "SAVE_DATASET",
    "SELECT_ALL",
    "SELECT_BASES",
    "SELECT_DATASET",
    "SELECT_DATASETS",
    "SELECT_DIRTY",
    "SELECT_FLOOR",
    "SELECT_RECORD",
    "SELECT_RECORDS",
    "SELECT_REVISIONS",
    "SELECT_STATES",
    "SET_SKIPPED",
    "SET_WRITTEN",
    "UPSERT_LOCAL",
    "UPSERT_LOCAL_JSON",
    "UPSERT_SYNCED",
]

RECORD_COLUMNS = (
    "key, value, sync_count, last_modified_date, last_modified_by, "
    "device_last_modified_date, dirty, revision"
)
DATASET_COLUMNS = "name, last_sync_count, deleted_pending, last_modified"
SELECT_DATASETS = f"SELECT {DATASET_COLUMNS} FROM datasets WHERE owner = ? ORDER BY name"
SELECT_DATASET = f"SELECT {DATASET_COLUMNS} FROM datasets WHERE owner = ? AND name = ?"
# A dataset's rows, key first (followed by an order, or " AND key IN (...)" for some keys).
SELECT_RECORDS = f"SELECT {RECORD_COLUMNS} FROM records WHERE owner = ? AND dataset = ?"
# What a watcher of the file compares: value, sync count and dirty flag by key.
SELECT_STATES = "SELECT key, value, sync_count, dirty FROM records WHERE owner = ? AND dataset = ?"
SELECT_RECORD = f"{SELECT_RECORDS} AND key = ?"
SELECT_DIRTY = (
    f"SELECT {RECORD_COLUMNS} FROM records WHERE owner = ? AND dataset = ? AND dirty = 1 "
    "ORDER BY key"
)
# Bases of dirty records (m003_sync_base): NULL base_value with base_known = 1 is "absent".
SELECT_BASES = (
    "SELECT key, base_value FROM records WHERE owner = ? AND dataset = ? AND dirty = 1 "
    "AND base_known = 1 ORDER BY key"
)
# Rows a write touches: key, value, sync_count, revision, bytes it counts (None if removed),
# and whether a push carrying it may have reached the server (m005_sent_records).
SELECT_ALL = (
    f"SELECT key, value, sync_count, revision, {RECORD_SIZE_SQL}, sent "
    "FROM records WHERE owner = ? AND dataset = ?"
)
# The revisions a sync step's guards compare (key, revision): no values read.
SELECT_REVISIONS = "SELECT key, revision FROM records WHERE owner = ? AND dataset = ?"
# A dataset counts towards the per-owner limit unless it is pending deletion and empty.
COUNTED_DATASETS = (
    "SELECT count(*) FROM datasets WHERE owner = ? AND (deleted_pending = 0 OR record_count > 0)"
)
INSERT_RECORD = """INSERT INTO records (owner, dataset, key, value, sync_count,
  last_modified_date, last_modified_by, device_last_modified_date, dirty, revision,
  base_value, base_known) """
SET_WRITTEN = """ON CONFLICT (owner, dataset, key) DO UPDATE SET value = excluded.value,
  last_modified_date = excluded.last_modified_date, last_modified_by = excluded.last_modified_by,
  device_last_modified_date = excluded.device_last_modified_date"""
# An app's write: a clean record's value becomes its base; a dirty one keeps its base.
LOCAL_CHANGE = f"""{SET_WRITTEN}, dirty = 1, revision = records.revision + 1,
  base_value = CASE WHEN records.dirty THEN records.base_value ELSE records.value END,
  base_known = CASE WHEN records.dirty THEN records.base_known ELSE 1 END"""
# A new record's revision is a parameter: one above the revision floor (see SELECT_FLOOR).
UPSERT_LOCAL = f"{INSERT_RECORD} VALUES (?, ?, ?, ?, 0, ?, ?, ?, 1, ?, NULL, 1) {LOCAL_CHANGE}"
# The same for a whole batch passed as one JSON object (faster than one row per binding).
UPSERT_LOCAL_JSON = f"""{INSERT_RECORD} SELECT ?, ?, j.key, j.value, 0, ?, ?, ?, 1, ?, NULL, 1
FROM json_each(?) AS j WHERE true {LOCAL_CHANGE}"""
# The revision floor: the highest revision of any record removed from the file (deleted
# outright, or with its dataset). A record created anew starts above it, so a revision
# never names two versions of one key, and a sync's revision guard never mistakes a record
# the app removed and wrote again for the one it read.
SELECT_FLOOR = "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'revision_floor'"
RAISE_FLOOR = """INSERT INTO meta (key, value) VALUES ('revision_floor', ?)
ON CONFLICT (key) DO UPDATE SET
  value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))"""
MAX_REVISION = "SELECT max(revision) FROM records WHERE owner = ? AND dataset = ?"
UPSERT_SYNCED = f"""{INSERT_RECORD} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
{SET_WRITTEN}, sync_count = excluded.sync_count, dirty = excluded.dirty,
  base_value = excluded.base_value, base_known = excluded.base_known"""
# A sync write skipped by its revision guard that still adopts the acknowledged sync count:
# the acknowledged value becomes the base of the edit made meanwhile.
SET_SKIPPED = """UPDATE records SET sync_count = ?, base_value = ?, base_known = 1
WHERE owner = ? AND dataset = ? AND key = ?"""
# A push is about to carry this never-synced record.
MARK_SENT = """UPDATE records SET sent = 1
WHERE owner = ? AND dataset = ? AND key IN ({marks}) AND sync_count = 0 AND sent = 0"""
# The dataset was deleted on the server: every record starts again from nothing.
RESET_SYNC_COUNTS = """UPDATE records SET sync_count = 0, dirty = (dirty OR value IS NOT NULL),
  base_value = NULL, base_known = 1 WHERE owner = ? AND dataset = ?"""
LATER = "max(coalesce(last_modified, ''), coalesce(excluded.last_modified, ''))"
SAVE_DATASET = f"""
INSERT INTO datasets (owner, name, last_modified, record_count, size_bytes) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (owner, name) DO UPDATE SET last_modified = {LATER},
  record_count = excluded.record_count, size_bytes = excluded.size_bytes
"""
# Recount a dataset's live totals and fold in a sync step's bookkeeping (nulls keep values).
FINISH_DATASET = f"""
UPDATE datasets SET
  record_count = (SELECT count(value) FROM records WHERE owner = :do AND dataset = :dn),
  size_bytes = (SELECT total({RECORD_SIZE_SQL})
                FROM records WHERE owner = :do AND dataset = :dn),
  last_modified = coalesce(max(coalesce(last_modified, ''), :newest), last_modified),
  last_sync_count = coalesce(:count, last_sync_count),
  deleted_pending = deleted_pending AND NOT :clear
WHERE owner = :do AND name = :dn
"""
# Moving a dataset: live records overwrite the target's (keeping its sync count) or join
# it unsynced; every moved record is dirty with a revision beyond both sides'.
MOVE_MERGE = """
UPDATE records AS t SET value = s.value, dirty = 1, revision = max(t.revision, s.revision) + 1,
  base_value = CASE WHEN t.dirty THEN t.base_value ELSE t.value END,
  base_known = CASE WHEN t.dirty THEN t.base_known ELSE 1 END,
  last_modified_date = s.last_modified_date, last_modified_by = s.last_modified_by,
  device_last_modified_date = s.device_last_modified_date
FROM records AS s
WHERE s.owner = :so AND s.dataset = :sn AND s.value IS NOT NULL
  AND t.owner = :do AND t.dataset = :dn AND t.key = s.key
"""
MOVE_NEW = f"""{INSERT_RECORD}
SELECT :do, :dn, key, value, 0, last_modified_date, last_modified_by,
  device_last_modified_date, 1, max(revision, :floor) + 1, NULL, 1
FROM records AS s WHERE s.owner = :so AND s.dataset = :sn AND s.value IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM records AS t WHERE t.owner = :do AND t.dataset = :dn
                  AND t.key = s.key)
"""
MOVE_DATASET = f"""
INSERT INTO datasets (owner, name, last_modified)
SELECT :do, :dn, last_modified FROM datasets WHERE owner = :so AND name = :sn
ON CONFLICT (owner, name) DO UPDATE SET last_modified = {LATER}
"""
