"""`DynamoTarget`: `cogsync migrate --to-stack` writes into a ``server_schema`` stack's table.

The table is found from the stack's ``TableName`` output (or its ``Table`` resource) and
written with boto3 in the item layout the VTL resolvers read (``server_schema/README.md``):

* ``d#<identityId>`` / ``<dataset>``: the dataset item (``syncCount``, ``deleted``,
  ``recordCount``, ``sizeInBytes``, ``mergedDatasetNames``, the record index ``idx``: key ->
  [syncCount, index, chunks, size, device date], live records per sync count ``segs``,
  garbage ``gc``, request ids ``reqs``/``reqOrder``);
* ``d#<identityId>`` / ``#meta``: ``datasetCount``, the live datasets of the identity;
* ``r#<identityId>#<dataset>`` / ``s#<syncCount>#<part>``: records of one sync count;
* ``r#<identityId>#<dataset>`` / ``c#<syncCount>#<index>#<chunk>``: values above 32 KB.

Records keep their own sync counts, dates, authors and device dates. An import writes its
segment and chunk items first, at sync counts above the dataset's (invisible until the
dataset item points at them), then one ``TransactWriteItems`` puts the dataset item on the
condition that its ``syncCount`` is still the one read (the resolvers' own check), so
readers see all of an import or none of it. Records whose data is already in the table are
not written again: re-running an import changes nothing. If the target's sync count has
passed a changed record's (devices pushed there, or the source dataset was re-created), the
changes are stamped with one new sync count so every device still pulls them. Limits are
the API's (``MAX_*`` environment variables), checked first with the typed
`LimitExceededError` subclasses of `cogsync.limits`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
)

from cogsync.exceptions import (
    CogsyncError,
    ConfigError,
    LimitExceededError,
    NotAuthorizedError,
    OfflineError,
    ServerError,
)
from cogsync.limits import (
    Limits,
    check_dataset_count,
    check_dataset_totals,
    validate_key,
    validate_name,
)
from cogsync.migrate_source import SourceRecord, SourceRecords
from cogsync.migrate_target import TargetDataset
from cogsync.stack import _stack_outputs

__all__ = ["DynamoTarget", "StoredRecord"]

T = TypeVar("T")

INLINE_BYTES = 32_768
"""Values above this many UTF-8 bytes go into chunk items (as the resolvers store them)."""
CHUNK_CHARS = 300_000
"""Base64 characters per chunk item."""
_PART_RECORDS = 1000
_PART_BYTES = 300_000
_RECORD_OVERHEAD = 120
_TRANSACTION_ITEMS = 100
_DATASET_ITEM_BYTES = 390_000
_ATTEMPTS = 5
_REFUSED = frozenset(
    {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"}
)
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
class _Dataset:
    """The dataset item, as plain Python values."""

    sync_count: int = 0
    deleted: bool = False
    exists: bool = False
    merged: list[str] = field(default_factory=list)
    idx: dict[str, list[Any]] = field(default_factory=dict)
    segs: dict[str, list[int]] = field(default_factory=dict)
    gc: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _item(attributes: dict[str, Any]) -> dict[str, Any]:
    return {name: _SERIALIZE(value) for name, value in attributes.items()}


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _segment_key(sync_count: int, part: int) -> str:
    return f"s#{sync_count:010d}#{part:03d}"


def _chunk_key(sync_count: int, index: int, chunk: int) -> str:
    return f"c#{sync_count:010d}#{index:04d}#{chunk:02d}"


def _garbage_of(ds: _Dataset, entry: list[Any]) -> list[str]:
    """Un-index one record version; return the items that became garbage."""
    count, index, chunks = int(entry[0]), int(entry[1]), int(entry[2])
    garbage = [_chunk_key(count, index, q) for q in range(chunks)]
    seg = ds.segs.get(str(count))
    if seg is not None:
        if seg[0] > 1:
            ds.segs[str(count)] = [seg[0] - 1, seg[1]]
        else:
            del ds.segs[str(count)]
            garbage.extend(_segment_key(count, p) for p in range(seg[1]))
    return garbage


class _Client:
    """The boto3 DynamoDB client with this module's error translation."""

    def __init__(self, client: Any, table: str) -> None:
        self.raw = client
        self.table = table

    def call(self, operation: str, *, scoped: bool = True, **params: Any) -> Any:
        """Run one client operation (on this table if ``scoped``), translating its errors."""
        if scoped:
            params["TableName"] = self.table
        try:
            return getattr(self.raw, operation)(**params)
        except ClientError as exc:
            raise self.translate(exc) from exc
        except NoCredentialsError as exc:
            raise ConfigError(
                "no AWS credentials found: configure credentials that may write the stack's "
                "table (aws configure, AWS_PROFILE or environment variables)"
            ) from exc
        except HTTPClientError as exc:
            raise OfflineError(
                f"cannot reach DynamoDB ({exc}); run again later (the checkpoint keeps "
                "finished work)"
            ) from exc
        except BotoCoreError as exc:
            raise ServerError(f"DynamoDB {operation} failed: {exc}") from exc

    def translate(self, exc: ClientError) -> CogsyncError:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", exc))
        if code == "ResourceNotFoundException":
            return ConfigError(
                f"table {self.table} does not exist ({message}): check --to-stack and its region"
            )
        if code in _REFUSED:
            return NotAuthorizedError(
                f"DynamoDB refused the credentials ({code}: {message}): use credentials "
                f"that may read and write table {self.table}"
            )
        return ServerError(f"DynamoDB failed ({code}: {message})")

    def query_all(self, pk: str, first: str, last: str, projection: str | None = None) -> list[Any]:
        params: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "ExpressionAttributeValues": {
                ":pk": {"S": pk},
                ":first": {"S": first},
                ":last": {"S": last},
            },
            "ConsistentRead": True,
        }
        if projection:
            params["ProjectionExpression"] = projection
        items: list[Any] = []
        while True:
            page = self.call("query", **params)
            items.extend({k: _DESERIALIZE(v) for k, v in i.items()} for i in page["Items"])
            if "LastEvaluatedKey" not in page:
                return _plain(items)  # type: ignore[no-any-return]
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _retrying(
        self, send: Callable[[dict[str, Any]], dict[str, Any]], what: str, pending: dict[str, Any]
    ) -> None:
        for delay in (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 0.0):
            if not pending:
                return
            pending = send(pending)
            if pending and delay:
                time.sleep(delay)
        if pending:
            raise ServerError(f"DynamoDB left {what} unprocessed; run again later")

    def batch_write(self, requests: list[dict[str, Any]]) -> None:
        def send(batch: dict[str, Any]) -> dict[str, Any]:
            answer = self.call("batch_write_item", scoped=False, RequestItems=batch)
            return answer.get("UnprocessedItems") or {}

        for start in range(0, len(requests), 25):
            self._retrying(send, "writes", {self.table: requests[start : start + 25]})

    def batch_get(self, pk: str, sks: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def send(batch: dict[str, Any]) -> dict[str, Any]:
            answer = self.call("batch_get_item", scoped=False, RequestItems=batch)
            for raw in answer.get("Responses", {}).get(self.table, []):
                found[raw["sk"]["S"]] = _DESERIALIZE(raw["v"])
            return answer.get("UnprocessedKeys") or {}

        for start in range(0, len(sks), 100):
            keys = [{"pk": {"S": pk}, "sk": {"S": sk}} for sk in sks[start : start + 100]]
            self._retrying(send, "reads", {self.table: {"Keys": keys, "ConsistentRead": True}})
        return found


def _resolve_table(stack_name: str, region: str | None) -> tuple[str, dict[str, str]]:
    outputs = _stack_outputs(stack_name, region)
    if outputs.get("TableName"):
        return outputs["TableName"], outputs
    try:
        client: Any = boto3.session.Session(region_name=region).client("cloudformation")
        resource = client.describe_stack_resource(StackName=stack_name, LogicalResourceId="Table")
        return str(resource["StackResourceDetail"]["PhysicalResourceId"]), outputs
    except (ClientError, BotoCoreError, KeyError) as exc:
        raise ConfigError(
            f"stack {stack_name!r} has no TableName output and no Table resource: deploy it "
            "from server_schema/template.yaml"
        ) from exc


def _stack_limits(api_id: str | None, region: str | None) -> Limits:
    """The API's limits (its ``MAX_*`` environment variables); Cognito's defaults if unread."""
    if not api_id:
        return Limits()
    try:
        client: Any = boto3.session.Session(region_name=region).client("appsync")
        env = client.get_graphql_api_environment_variables(apiId=api_id).get("environmentVariables")
    except (ClientError, BotoCoreError):
        return Limits()
    if not isinstance(env, dict):
        return Limits()
    names = {
        "MAX_DATASETS": "max_datasets",
        "MAX_RECORDS": "max_records",
        "MAX_DATASET_BYTES": "max_dataset_bytes",
        "MAX_KEY_BYTES": "max_key_bytes",
    }
    found = {attr: int(env[var]) for var, attr in names.items() if str(env.get(var, "")).isdigit()}
    return replace(Limits(), **found)


class _Conflict(Exception):
    """The dataset item changed between the read and the transaction."""


@dataclass(frozen=True, slots=True)
class _Row:
    """A record version to write: its sync count and dates already decided."""

    key: str
    value: str | None
    sync_count: int
    modified: str
    by: str | None
    device: str | None


def _differs(stored: StoredRecord | None, record: SourceRecord) -> bool:
    """True if the table lacks this record's data (sync counts aside: they may be restamped)."""
    if stored is None:
        return True
    modified = _iso(record.last_modified_date)
    return (stored.value, stored.last_modified_by, stored.device_last_modified_date) != (
        record.value,
        record.last_modified_by,
        _iso(record.device_last_modified_date),
    ) or (modified is not None and modified != stored.last_modified_date)


class DynamoTarget:
    """The DynamoDB table of a deployed ``server_schema`` stack, written in the resolvers' layout.

    Args:
        stack_name: the CloudFormation stack made from ``server_schema/template.yaml``.
        region: the stack's region (None: boto3's configured region).
        limits: the API's limits; None reads them from the stack's AppSync API (its
            ``MAX_*`` environment variables), falling back to Cognito's defaults.

    Raises:
        ConfigError: the stack, its table or AWS credentials cannot be found.
        OfflineError: AWS cannot be reached.
    """

    def __init__(
        self, stack_name: str, *, region: str | None = None, limits: Limits | None = None
    ) -> None:
        table, outputs = _resolve_table(stack_name, region)
        self.table = table
        self.limits = limits or _stack_limits(outputs.get("ApiId"), region)
        self.description = f"DynamoDB table {table} of stack {stack_name}"
        try:
            raw = boto3.session.Session(region_name=region).client(
                "dynamodb", config=BotoConfig(retries={"mode": "standard", "max_attempts": 8})
            )
        except NoRegionError as exc:
            raise ConfigError("no AWS region is configured: pass --region") from exc
        self._db = _Client(raw, table)
        self._db.call("describe_table")

    # --- reading -----------------------------------------------------------------------------

    def _load(self, identity_id: str, name: str) -> _Dataset:
        key = {"pk": {"S": f"d#{identity_id}"}, "sk": {"S": name}}
        raw = self._db.call("get_item", Key=key, ConsistentRead=True).get("Item")
        if not raw:
            return _Dataset()
        item = _plain({k: _DESERIALIZE(v) for k, v in raw.items()})
        return _Dataset(
            sync_count=int(item.get("syncCount") or 0),
            deleted=bool(item.get("deleted")),
            exists=True,
            merged=list(item.get("mergedDatasetNames") or []),
            idx=dict(item.get("idx") or {}),
            segs=dict(item.get("segs") or {}),
            gc=list(item.get("gc") or []),
            extra={"reqs": item.get("reqs") or {}, "reqOrder": item.get("reqOrder") or []},
        )

    def _current(self, identity_id: str, name: str, ds: _Dataset) -> dict[str, StoredRecord]:
        """Every record the dataset item indexes as current (tombstones too), values whole."""
        pk = f"r#{identity_id}#{name}"
        current: dict[str, StoredRecord] = {}
        chunked: list[tuple[str, list[str]]] = []
        for part in self._db.query_all(pk, "s#", "s#~"):
            for r in part.get("recs") or ():
                entry = ds.idx.get(r["k"])
                if entry is None or entry[0] != r["c"] or entry[1] != r["i"]:
                    continue
                current[r["k"]] = StoredRecord(
                    r["k"], r.get("v"), r["c"], r.get("m"), r.get("b"), r.get("d")
                )
                if r.get("x"):
                    keys = [_chunk_key(r["c"], r["i"], q) for q in range(r["x"])]
                    chunked.append((r["k"], keys))
        if chunked:
            found = self._db.batch_get(pk, [sk for _, keys in chunked for sk in keys])
            for key, keys in chunked:
                if any(sk not in found for sk in keys):
                    raise ServerError(
                        f"a value chunk of record {key!r} in {identity_id}/{name} is missing "
                        f"from table {self.table}; run again (it may be mid-write)"
                    )
                value = base64.b64decode("".join(found[sk] for sk in keys)).decode("utf-8")
                current[key] = replace(current[key], value=value)
        return current

    def records(self, identity_id: str, name: str) -> list[StoredRecord]:
        """The current records of one dataset as the resolvers serve them, by key."""
        ds = self._load(identity_id, name)
        return sorted(self._current(identity_id, name, ds).values(), key=lambda r: r.key)

    def export_dataset(self, identity_id: str, name: str) -> TargetDataset:
        """Read one dataset back for verification (tombstones included)."""
        ds = self._load(identity_id, name)
        if not ds.exists:
            return TargetDataset(False, 0, ())
        pairs = sorted((k, r.value) for k, r in self._current(identity_id, name, ds).items())
        return TargetDataset(not ds.deleted, ds.sync_count, tuple(pairs))

    def _dataset_count(self, identity_id: str) -> int:
        key = {"pk": {"S": f"d#{identity_id}"}, "sk": {"S": "#meta"}}
        item = self._db.call("get_item", Key=key, ConsistentRead=True).get("Item") or {}
        return int(item.get("datasetCount", {}).get("N", "0"))

    # --- writing -----------------------------------------------------------------------------

    def import_dataset(
        self, identity_id: str, name: str, data: SourceRecords, *, deleted: bool = False
    ) -> int:
        """Write a dataset (all-or-nothing, idempotent); return how many records were written.

        Raises:
            LimitExceededError: the dataset would break the API's limits; nothing written.
            UsageError: an invalid dataset name or record key.
        """
        validate_name(name, self.limits)
        for _ in range(_ATTEMPTS):
            ds = self._load(identity_id, name)
            try:
                if deleted:
                    return self._delete(identity_id, name, ds)
                return self._import(identity_id, name, data, ds)
            except _Conflict:
                continue
        raise ServerError(
            f"dataset {identity_id}/{name} kept changing in table {self.table} while it was "
            "imported (devices are writing to it): run again"
        )

    def _import(self, identity_id: str, name: str, data: SourceRecords, ds: _Dataset) -> int:
        stored = self._current(identity_id, name, ds) if ds.exists else {}
        changed = [r for r in data.records if _differs(stored.get(r.key), r)]
        top = max([data.sync_count, *(r.sync_count for r in data.records)])
        merged = sorted(set(ds.merged) | set(data.merged_dataset_names))
        revive = not ds.exists or ds.deleted
        if not changed and not revive and top <= ds.sync_count and merged == sorted(ds.merged):
            return 0
        for record in changed:
            validate_key(record.key, self.limits)
        if revive:
            check_dataset_count(self._dataset_count(identity_id) + 1, self.limits)
        count, size = check_dataset_totals(
            name,
            {k: r.value for k, r in stored.items()},
            {r.key: r.value for r in changed},
            self.limits,
        )
        now = _iso(datetime.now(UTC)) or ""
        new_count = max(top, ds.sync_count)
        stamp: int | None = None
        if any(r.sync_count <= ds.sync_count for r in changed):
            stamp = ds.sync_count + 1  # devices may have pulled past these counts: restamp
            new_count = max(stamp, data.sync_count)
        if ds.deleted and new_count == ds.sync_count:
            new_count += 1  # devices that pulled the deletion must see the revival
        rows = [
            _Row(
                r.key,
                r.value,
                stamp or r.sync_count,
                _iso(r.last_modified_date) or now,
                r.last_modified_by,
                _iso(r.device_last_modified_date),
            )
            for r in changed
        ]
        item: dict[str, Any] = {"syncCount": new_count, "deleted": False, "recordCount": count}
        item.update(sizeInBytes=size, lastModifiedDate=now)
        self._commit(identity_id, name, ds, rows, item, merged, meta=1 if revive else 0)
        return len(rows)

    def _delete(self, identity_id: str, name: str, ds: _Dataset) -> int:
        """Turn every live record into a tombstone at a new sync count, as deleteDataset does."""
        if not ds.exists or ds.deleted:
            return 0
        now = _iso(datetime.now(UTC)) or ""
        stamp = ds.sync_count + 1
        live = sorted(k for k, entry in ds.idx.items() if entry[3] > 0)
        rows = [_Row(k, None, stamp, now, None, None) for k in live]
        item: dict[str, Any] = {"syncCount": stamp, "deleted": True, "recordCount": 0}
        item.update(sizeInBytes=0, lastModifiedDate=now)
        self._commit(identity_id, name, ds, rows, item, ds.merged, meta=-1)
        return len(rows)

    def _layout(self, pk: str, rows: list[_Row], ds: _Dataset) -> list[dict[str, Any]]:
        """Pack ``rows`` into segment and chunk items (one group per sync count); index them."""
        groups: dict[int, list[_Row]] = {}
        for row in rows:
            groups.setdefault(row.sync_count, []).append(row)
        puts: list[dict[str, Any]] = []
        for count, members in sorted(groups.items()):
            members.sort(key=lambda row: row.key)
            parts, part_bytes = 0, 0
            recs: list[dict[str, Any]] = []
            for index, row in enumerate(members):
                key_bytes = len(row.key.encode("utf-8"))
                rec: dict[str, Any] = {"k": row.key, "c": count, "i": index, "m": row.modified}
                rec["x"] = 0
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
                            sk = _chunk_key(count, index, q)
                            puts.append(
                                {"pk": pk, "sk": sk, "v": text[start : start + CHUNK_CHARS]}
                            )
                        rec["x"] = len(chunks)
                    else:
                        rec["v"] = row.value
                        record_bytes += size
                if recs and (len(recs) >= _PART_RECORDS or part_bytes + record_bytes > _PART_BYTES):
                    puts.append(
                        {
                            "pk": pk,
                            "sk": _segment_key(count, parts),
                            "c": count,
                            "p": parts,
                            "recs": recs,
                        }
                    )
                    parts, recs, part_bytes = parts + 1, [], 0
                recs.append(rec)
                part_bytes += record_bytes
                ds.idx[row.key] = [count, index, rec["x"], size, row.device]
            puts.append(
                {"pk": pk, "sk": _segment_key(count, parts), "c": count, "p": parts, "recs": recs}
            )
            ds.segs[str(count)] = [len(members), parts + 1]
        return puts

    def _commit(
        self,
        identity_id: str,
        name: str,
        ds: _Dataset,
        rows: list[_Row],
        item: dict[str, Any],
        merged: list[str],
        *,
        meta: int,
    ) -> None:
        """Write-ahead the new items, then the dataset item in one conditional transaction."""
        pk = f"r#{identity_id}#{name}"
        seen = ds.sync_count
        new_count = int(item["syncCount"])
        garbage = list(ds.gc)
        for row in rows:
            if row.key in ds.idx:
                garbage.extend(_garbage_of(ds, ds.idx[row.key]))
        # Items above the read sync count are leftovers of an import killed before its commit.
        leftovers = [
            i["sk"]
            for first, last in ((f"s#{seen + 1:010d}", "s#~"), (f"c#{seen + 1:010d}", "c#~"))
            for i in self._db.query_all(pk, first, last, projection="sk")
        ]
        puts = self._layout(pk, rows, ds)
        written = {p["sk"] for p in puts}
        leftovers = [sk for sk in leftovers if sk not in written]
        urgent = [sk for sk in leftovers if int(sk[2:12]) > new_count]  # reused by later pushes
        garbage = list(dict.fromkeys([*garbage, *(sk for sk in leftovers if sk not in urgent)]))
        transaction = self._transaction(identity_id, name, ds, seen, meta)
        budget = _TRANSACTION_ITEMS - len(transaction) - len(urgent)
        if budget < 0:
            raise ServerError(
                f"{identity_id}/{name} has {len(urgent)} stale items from an interrupted "
                f"import in table {self.table}: delete items of pk {pk} above sort key "
                f"s#{new_count:010d} and run again"
            )
        deletes, kept = [*urgent, *garbage[:budget]], garbage[budget:]
        item.update(mergedDatasetNames=merged, idx=ds.idx, segs=ds.segs, gc=kept, **ds.extra)
        body = _item({"pk": f"d#{identity_id}", "sk": name, **item})
        if sum(len(k) + len(repr(v)) for k, v in body.items()) > _DATASET_ITEM_BYTES:
            raise LimitExceededError(
                f"dataset {name!r} would index {len(ds.idx)} keys (removed ones included), "
                "more than one table item holds: import it into a fresh dataset name or prune "
                "removed keys at the source"
            )
        transaction[0]["Put"]["Item"] = body
        for sk in deletes:
            key = {"pk": {"S": pk}, "sk": {"S": sk}}
            transaction.append({"Delete": {"TableName": self.table, "Key": key}})
        self._db.batch_write([{"PutRequest": {"Item": _item(p)}} for p in puts])
        self._transact(transaction, meta)

    def _transaction(
        self, identity_id: str, name: str, ds: _Dataset, seen: int, meta: int
    ) -> list[dict[str, Any]]:
        put: dict[str, Any] = {"TableName": self.table, "Item": {}}
        if ds.exists:
            put["ConditionExpression"] = "syncCount = :seen"
            put["ExpressionAttributeValues"] = {":seen": {"N": str(seen)}}
        else:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        transaction: list[dict[str, Any]] = [{"Put": put}]
        if meta:
            update: dict[str, Any] = {
                "TableName": self.table,
                "Key": {"pk": {"S": f"d#{identity_id}"}, "sk": {"S": "#meta"}},
                "UpdateExpression": "ADD datasetCount :n",
                "ExpressionAttributeValues": {":n": {"N": str(meta)}},
            }
            if meta > 0:
                update["ConditionExpression"] = (
                    "attribute_not_exists(datasetCount) OR datasetCount < :max"
                )
                update["ExpressionAttributeValues"][":max"] = {"N": str(self.limits.max_datasets)}
            transaction.append({"Update": update})
        return transaction

    def _transact(self, transaction: list[dict[str, Any]], meta: int) -> None:
        try:
            self._db.call("transact_write_items", scoped=False, TransactItems=transaction)
        except ServerError as exc:
            cause = exc.__cause__
            if not isinstance(cause, ClientError):
                raise
            if cause.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in cause.response.get("CancellationReasons") or ()]
            if meta > 0 and len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                check_dataset_count(self.limits.max_datasets + 1, self.limits)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise _Conflict from exc
            raise ServerError(f"DynamoDB refused the import transaction ({reasons})") from cause
