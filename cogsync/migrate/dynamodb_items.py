"""The item layout of a ``server_schema`` table, as pure functions (no AWS calls).

The layout is the one the VTL resolvers read and write (``server_schema/README.md``):

* ``d#<identityId>`` / ``<dataset>``: the dataset item (``syncCount``, ``deleted``,
  ``recordCount``, ``sizeInBytes``, ``mergedDatasetNames``, the record index ``idx``: key ->
  [syncCount, index, chunks, size, device date], live records per sync count ``segs``,
  garbage ``gc``, request ids ``reqs``/``reqOrder``);
* ``d#<identityId>`` / ``#meta``: ``datasetCount``, the live datasets of the identity;
* ``r#<identityId>#<dataset>`` / ``s#<syncCount>#<part>``: records of one sync count;
* ``r#<identityId>#<dataset>`` / ``c#<syncCount>#<index>#<chunk>``: values above 32 KB.

This module encodes and decodes those items, decides which records an import writes and at
which sync counts, packs them into segment and chunk items, and builds the conditional
transaction that commits them. `cogsync.migrate.dynamodb` does the reading and writing.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from cogsync.exceptions import LimitExceededError, ServerError
from cogsync.migrate.source import SourceRecord, SourceRecords
from cogsync.migrate.target import datetime_text

__all__ = [
    "CHUNK_CHARS",
    "INLINE_BYTES",
    "META_SK",
    "DatasetItem",
    "Row",
    "StoredRecord",
    "chunk_key",
    "commit_items",
    "current_records",
    "dataset_attributes",
    "dataset_pk",
    "decode_item",
    "deletion_rows",
    "differs",
    "encode_item",
    "garbage_of",
    "import_rows",
    "is_current",
    "join_chunks",
    "layout",
    "records_pk",
    "segment_key",
]

INLINE_BYTES = 32_768
"""Values above this many UTF-8 bytes go into chunk items (as the resolvers store them)."""
CHUNK_CHARS = 300_000
"""Base64 characters per chunk item."""
META_SK = "#meta"
"""The sort key of an identity's ``datasetCount`` item."""
_PART_RECORDS = 1000
_PART_BYTES = 300_000
_RECORD_OVERHEAD = 120
_TRANSACTION_ITEMS = 100
_DATASET_ITEM_BYTES = 390_000
_SERIALIZE = TypeSerializer().serialize
_DESERIALIZE = TypeDeserializer().deserialize


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One current record of a dataset in the table (``value`` None: a tombstone)."""

    key: str
    value: str | None
    sync_count: int
    last_modified_date: str | None
    last_modified_by: str | None
    device_last_modified_date: str | None


@dataclass
class DatasetItem:
    """The dataset item, as plain Python values (``exists`` False: there is none)."""

    sync_count: int = 0
    deleted: bool = False
    exists: bool = False
    merged: list[str] = field(default_factory=list)
    idx: dict[str, list[Any]] = field(default_factory=dict)
    segs: dict[str, list[int]] = field(default_factory=dict)
    gc: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def decode(cls, raw: dict[str, Any] | None) -> DatasetItem:
        """The dataset item from its DynamoDB attribute values (None or empty: none yet)."""
        if not raw:
            return cls()
        item = decode_item(raw)
        return cls(
            sync_count=int(item.get("syncCount") or 0),
            deleted=bool(item.get("deleted")),
            exists=True,
            merged=list(item.get("mergedDatasetNames") or []),
            idx=dict(item.get("idx") or {}),
            segs=dict(item.get("segs") or {}),
            gc=list(item.get("gc") or []),
            extra={"reqs": item.get("reqs") or {}, "reqOrder": item.get("reqOrder") or []},
        )


@dataclass(frozen=True, slots=True)
class Row:
    """A record version to write: its sync count and dates already decided."""

    key: str
    value: str | None
    sync_count: int
    modified: str
    by: str | None
    device: str | None


def dataset_pk(identity_id: str) -> str:
    """The partition of an identity's dataset items and its ``#meta`` item."""
    return f"d#{identity_id}"


def records_pk(identity_id: str, name: str) -> str:
    """The partition of one dataset's segment and chunk items."""
    return f"r#{identity_id}#{name}"


def segment_key(sync_count: int, part: int) -> str:
    """The sort key of one part of the records written at ``sync_count``."""
    return f"s#{sync_count:010d}#{part:03d}"


def chunk_key(sync_count: int, index: int, chunk: int) -> str:
    """The sort key of one chunk of a large value."""
    return f"c#{sync_count:010d}#{index:04d}#{chunk:02d}"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def encode_item(attributes: dict[str, Any]) -> dict[str, Any]:
    """Plain Python attributes -> DynamoDB attribute values."""
    return {name: _SERIALIZE(value) for name, value in attributes.items()}


def decode_item(raw: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute values -> plain Python attributes (numbers as ``int``)."""
    return {name: _plain(_DESERIALIZE(value)) for name, value in raw.items()}


def join_chunks(chunks: list[str]) -> str:
    """The value stored in ``chunks`` (base64 text, in order)."""
    return base64.b64decode("".join(chunks)).decode("utf-8")


def current_records(
    parts: list[dict[str, Any]], ds: DatasetItem
) -> tuple[dict[str, StoredRecord], list[tuple[str, list[str]]]]:
    """The records of segment ``parts`` that the index says are current, by key.

    Returns them, and for each chunked value its key and chunk sort keys (the value of such
    a record is None until filled in with `join_chunks`).
    """
    current: dict[str, StoredRecord] = {}
    chunked: list[tuple[str, list[str]]] = []
    for part in parts:
        for r in part.get("recs") or ():
            entry = ds.idx.get(r["k"])
            if entry is None or entry[0] != r["c"] or entry[1] != r["i"]:
                continue
            current[r["k"]] = StoredRecord(
                r["k"], r.get("v"), r["c"], r.get("m"), r.get("b"), r.get("d")
            )
            if r.get("x"):
                chunked.append((r["k"], [chunk_key(r["c"], r["i"], q) for q in range(r["x"])]))
    return current, chunked


def garbage_of(ds: DatasetItem, entry: list[Any]) -> list[str]:
    """Un-index one record version; return the items that became garbage."""
    count, index, chunks = int(entry[0]), int(entry[1]), int(entry[2])
    garbage = [chunk_key(count, index, q) for q in range(chunks)]
    seg = ds.segs.get(str(count))
    if seg is not None:
        if seg[0] > 1:
            ds.segs[str(count)] = [seg[0] - 1, seg[1]]
        else:
            del ds.segs[str(count)]
            garbage.extend(segment_key(count, p) for p in range(seg[1]))
    return garbage


def differs(stored: StoredRecord | None, record: SourceRecord) -> bool:
    """True if the table lacks this record's data (sync counts aside: they may be restamped)."""
    if stored is None:
        return True
    modified = datetime_text(record.last_modified_date)
    return (stored.value, stored.last_modified_by, stored.device_last_modified_date) != (
        record.value,
        record.last_modified_by,
        datetime_text(record.device_last_modified_date),
    ) or (modified is not None and modified != stored.last_modified_date)


def _top(data: SourceRecords) -> int:
    return max([data.sync_count, *(r.sync_count for r in data.records)])


def is_current(
    ds: DatasetItem, data: SourceRecords, changed: list[SourceRecord], merged: list[str]
) -> bool:
    """True if the live dataset item already holds all of ``data`` (an import writes nothing)."""
    live = ds.exists and not ds.deleted
    return live and not changed and _top(data) <= ds.sync_count and merged == sorted(ds.merged)


def import_rows(
    ds: DatasetItem, data: SourceRecords, changed: list[SourceRecord], now: str
) -> tuple[list[Row], int]:
    """The rows an import writes for the ``changed`` records, and the new dataset sync count.

    Records keep their own sync counts unless the table's has passed one of them (devices
    may have pulled past it, or the source dataset was re-created): then all are stamped with
    one new sync count so every device still pulls them. A deleted dataset revived at its own
    sync count moves one on, so devices that pulled the deletion see the revival.
    """
    new_count = max(_top(data), ds.sync_count)
    stamp: int | None = None
    if any(r.sync_count <= ds.sync_count for r in changed):
        stamp = ds.sync_count + 1
        new_count = max(stamp, data.sync_count)
    if ds.deleted and new_count == ds.sync_count:
        new_count += 1
    rows = [
        Row(
            r.key,
            r.value,
            stamp or r.sync_count,
            datetime_text(r.last_modified_date) or now,
            r.last_modified_by,
            datetime_text(r.device_last_modified_date),
        )
        for r in changed
    ]
    return rows, new_count


def deletion_rows(ds: DatasetItem, now: str) -> list[Row]:
    """Tombstones for every live record at one new sync count, as ``deleteDataset`` writes."""
    live = sorted(k for k, entry in ds.idx.items() if entry[3] > 0)
    return [Row(k, None, ds.sync_count + 1, now, None, None) for k in live]


def dataset_attributes(
    sync_count: int, *, deleted: bool, count: int, size: int, now: str
) -> dict[str, Any]:
    """The dataset item's own attributes after an import (the index is added on commit)."""
    return {
        "syncCount": sync_count,
        "deleted": deleted,
        "recordCount": count,
        "sizeInBytes": size,
        "lastModifiedDate": now,
    }


def _record_entry(
    pk: str, row: Row, count: int, index: int, puts: list[dict[str, Any]]
) -> tuple[dict[str, Any], int, int]:
    """One record of a segment; its chunk items go to ``puts``. Returns (rec, size, bytes)."""
    key_bytes = len(row.key.encode("utf-8"))
    rec: dict[str, Any] = {"k": row.key, "c": count, "i": index, "m": row.modified, "x": 0}
    if row.by is not None:
        rec["b"] = row.by
    if row.device is not None:
        rec["d"] = row.device
    size, record_bytes = 0, key_bytes + _RECORD_OVERHEAD
    if row.value is not None:
        raw = row.value.encode("utf-8")
        size = key_bytes + len(raw)
        if len(raw) > INLINE_BYTES:
            text = base64.b64encode(raw).decode("ascii")
            chunks = range(0, len(text), CHUNK_CHARS)
            for q, start in enumerate(chunks):
                sk = chunk_key(count, index, q)
                puts.append({"pk": pk, "sk": sk, "v": text[start : start + CHUNK_CHARS]})
            rec["x"] = len(chunks)
        else:
            rec["v"] = row.value
            record_bytes += size
    return rec, size, record_bytes


def _segment(pk: str, count: int, part: int, recs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"pk": pk, "sk": segment_key(count, part), "c": count, "p": part, "recs": recs}


def layout(pk: str, rows: list[Row], ds: DatasetItem) -> list[dict[str, Any]]:
    """Pack ``rows`` into segment and chunk items (one group per sync count); index them."""
    groups: dict[int, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.sync_count, []).append(row)
    puts: list[dict[str, Any]] = []
    for count, members in sorted(groups.items()):
        members.sort(key=lambda row: row.key)
        parts, part_bytes = 0, 0
        recs: list[dict[str, Any]] = []
        for index, row in enumerate(members):
            rec, size, record_bytes = _record_entry(pk, row, count, index, puts)
            if recs and (len(recs) >= _PART_RECORDS or part_bytes + record_bytes > _PART_BYTES):
                puts.append(_segment(pk, count, parts, recs))
                parts, recs, part_bytes = parts + 1, [], 0
            recs.append(rec)
            part_bytes += record_bytes
            ds.idx[row.key] = [count, index, rec["x"], size, row.device]
        puts.append(_segment(pk, count, parts, recs))
        ds.segs[str(count)] = [len(members), parts + 1]
    return puts


def _transaction(
    table: str, identity_id: str, ds: DatasetItem, meta: int, max_datasets: int
) -> list[dict[str, Any]]:
    """The dataset item put (conditioned on the sync count read) and the ``#meta`` update."""
    put: dict[str, Any] = {"TableName": table, "Item": {}}
    if ds.exists:
        put["ConditionExpression"] = "syncCount = :seen"
        put["ExpressionAttributeValues"] = {":seen": {"N": str(ds.sync_count)}}
    else:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
    transaction: list[dict[str, Any]] = [{"Put": put}]
    if meta:
        update: dict[str, Any] = {
            "TableName": table,
            "Key": {"pk": {"S": dataset_pk(identity_id)}, "sk": {"S": META_SK}},
            "UpdateExpression": "ADD datasetCount :n",
            "ExpressionAttributeValues": {":n": {"N": str(meta)}},
        }
        if meta > 0:
            update["ConditionExpression"] = (
                "attribute_not_exists(datasetCount) OR datasetCount < :max"
            )
            update["ExpressionAttributeValues"][":max"] = {"N": str(max_datasets)}
        transaction.append({"Update": update})
    return transaction


def commit_items(
    table: str,
    identity_id: str,
    name: str,
    ds: DatasetItem,
    rows: list[Row],
    attributes: dict[str, Any],
    *,
    merged: list[str],
    meta: int,
    leftovers: list[str],
    max_datasets: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What an import writes: the items to write ahead, and the transaction that commits them.

    The segment and chunk items of ``rows`` (at sync counts above the one read, so invisible
    until committed) go first; then one transaction puts the dataset item on the condition
    that its ``syncCount`` is still ``ds.sync_count``, updates ``#meta`` by ``meta``, and
    deletes garbage up to the transaction's item cap (the rest stays in ``gc``).
    ``leftovers`` are items above the read sync count left by an import killed before its
    commit: those above the new sync count are deleted at once (later pushes reuse their keys).

    Raises:
        LimitExceededError: the index would not fit in one item.
        ServerError: too many leftovers for one transaction.
    """
    pk = records_pk(identity_id, name)
    new_count = int(attributes["syncCount"])
    garbage = list(ds.gc)
    for row in rows:
        if row.key in ds.idx:
            garbage.extend(garbage_of(ds, ds.idx[row.key]))
    puts = layout(pk, rows, ds)
    written = {p["sk"] for p in puts}
    leftovers = [sk for sk in leftovers if sk not in written]
    urgent = [sk for sk in leftovers if int(sk[2:12]) > new_count]
    garbage = list(dict.fromkeys([*garbage, *(sk for sk in leftovers if sk not in urgent)]))
    transaction = _transaction(table, identity_id, ds, meta, max_datasets)
    budget = _TRANSACTION_ITEMS - len(transaction) - len(urgent)
    if budget < 0:
        raise ServerError(
            f"{identity_id}/{name} has {len(urgent)} stale items from an interrupted "
            f"import in table {table}: delete items of pk {pk} above sort key "
            f"s#{new_count:010d} and run again"
        )
    deletes, kept = [*urgent, *garbage[:budget]], garbage[budget:]
    item = {**attributes, "mergedDatasetNames": merged, "idx": ds.idx, "segs": ds.segs}
    item.update(gc=kept, **ds.extra)
    body = encode_item({"pk": dataset_pk(identity_id), "sk": name, **item})
    if sum(len(k) + len(repr(v)) for k, v in body.items()) > _DATASET_ITEM_BYTES:
        raise LimitExceededError(
            f"dataset {name!r} would index {len(ds.idx)} keys (removed ones included), "
            "more than one table item holds: import it into a fresh dataset name or prune "
            "removed keys at the source"
        )
    transaction[0]["Put"]["Item"] = body
    for sk in deletes:
        key = {"pk": {"S": pk}, "sk": {"S": sk}}
        transaction.append({"Delete": {"TableName": table, "Key": key}})
    return puts, transaction
