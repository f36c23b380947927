"""The ``server_schema`` stack target of `cogsync migrate` (``--to-stack``): `DynamoTarget`.

The table is found from the stack's ``TableName`` output (or its ``Table`` resource) and
written with boto3 in the item layout the VTL resolvers read, as
`cogsync.migrate.dynamodb_items` lays it out; this module does the AWS calls and translates
their failures.

Records keep their own sync counts, dates, authors and device dates. An import writes its
segment and chunk items first, at sync counts above the dataset's (invisible until the
dataset item points at them), then one ``TransactWriteItems`` puts the dataset item on the
condition that its ``syncCount`` is still the one read (the resolvers' own check), so
readers see all of an import or none of it; a dataset that changed in between is read again
and the import retried. Records whose data is already in the table are not written again:
re-running an import changes nothing. Limits are the API's (``MAX_*`` environment
variables), checked first with the typed `LimitExceededError` subclasses of `cogsync.limits`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, NoRegionError

from cogsync._awsdatetime import format_datetime
from cogsync._boto_errors import BOTO_ERRORS, translate_boto_error
from cogsync.exceptions import (
    CogsyncError,
    ConfigError,
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
from cogsync.migrate.dynamodb_items import (
    META_SK,
    DatasetItem,
    Row,
    StoredRecord,
    commit_items,
    current_records,
    dataset_attributes,
    dataset_pk,
    decode_item,
    deletion_rows,
    differs,
    encode_item,
    import_rows,
    is_current,
    join_chunks,
    records_pk,
)
from cogsync.migrate.source import SourceRecords
from cogsync.migrate.target import TargetDataset
from cogsync.stack import stack_outputs

__all__ = ["DynamoTarget", "StoredRecord"]

_ATTEMPTS = 5
_REFUSED = frozenset(
    {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"}
)
_LIMIT_VARIABLES = {
    "MAX_DATASETS": "max_datasets",
    "MAX_RECORDS": "max_records",
    "MAX_DATASET_BYTES": "max_dataset_bytes",
    "MAX_KEY_BYTES": "max_key_bytes",
}
"""The API's environment variables that set `Limits` fields."""

_NO_TABLE: tuple[type[Exception], ...] = (*BOTO_ERRORS, KeyError)
"""What ``DescribeStackResource`` of a stack without a ``Table`` resource raises."""

Answered = Callable[[str, str, ClientError], CogsyncError]


class _Conflict(ServerError):
    """The dataset item changed between the read and the transaction."""


def _no_credentials(exc: Exception) -> CogsyncError:
    return ConfigError(
        "no AWS credentials found: configure credentials that may write the stack's "
        "table (aws configure, AWS_PROFILE or environment variables)"
    )


def _unreachable(exc: Exception) -> CogsyncError:
    return OfflineError(
        f"cannot reach DynamoDB ({exc}); run again later (the checkpoint keeps finished work)"
    )


class _Client:
    """The boto3 DynamoDB client of one table, with this module's error translation."""

    def __init__(self, client: Any, table: str) -> None:
        self.raw = client
        self.table = table

    def call(
        self,
        operation: str,
        *,
        scoped: bool = True,
        answered: Answered | None = None,
        **params: Any,
    ) -> Any:
        """Run one client operation (on this table if ``scoped``), translating its errors.

        ``answered`` decides what an error answer means (default: `answered`).
        """
        if scoped:
            params["TableName"] = self.table
        try:
            return getattr(self.raw, operation)(**params)
        except BOTO_ERRORS as exc:
            raise translate_boto_error(
                exc,
                answered=answered or self.answered,
                unreachable=_unreachable,
                failed=lambda e: ServerError(f"DynamoDB {operation} failed: {e}"),
                no_credentials=_no_credentials,
            ) from exc

    def answered(self, code: str, message: str, exc: ClientError) -> CogsyncError:
        """The error for an error answer of DynamoDB."""
        message = message or str(exc)
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
        """Every item of partition ``pk`` with a sort key from ``first`` to ``last``, decoded."""
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
            items.extend(decode_item(i) for i in page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
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
        """Write items (``PutRequest`` / ``DeleteRequest``), 25 a batch, retrying what is left."""

        def send(batch: dict[str, Any]) -> dict[str, Any]:
            answer = self.call("batch_write_item", scoped=False, RequestItems=batch)
            return answer.get("UnprocessedItems") or {}

        for start in range(0, len(requests), 25):
            self._retrying(send, "writes", {self.table: requests[start : start + 25]})

    def batch_get(self, pk: str, sks: list[str]) -> dict[str, Any]:
        """The ``v`` attribute of each found item of partition ``pk``, by sort key."""
        found: dict[str, Any] = {}

        def send(batch: dict[str, Any]) -> dict[str, Any]:
            answer = self.call("batch_get_item", scoped=False, RequestItems=batch)
            for raw in answer.get("Responses", {}).get(self.table, []):
                item = decode_item(raw)
                found[item["sk"]] = item["v"]
            return answer.get("UnprocessedKeys") or {}

        for start in range(0, len(sks), 100):
            keys = [{"pk": {"S": pk}, "sk": {"S": sk}} for sk in sks[start : start + 100]]
            self._retrying(send, "reads", {self.table: {"Keys": keys, "ConsistentRead": True}})
        return found


def _resolve_table(stack_name: str, region: str | None) -> tuple[str, dict[str, str]]:
    outputs = stack_outputs(stack_name, region)
    if outputs.get("TableName"):
        return outputs["TableName"], outputs
    try:
        client: Any = boto3.session.Session(region_name=region).client("cloudformation")
        resource = client.describe_stack_resource(StackName=stack_name, LogicalResourceId="Table")
        return str(resource["StackResourceDetail"]["PhysicalResourceId"]), outputs
    except _NO_TABLE as exc:
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
    except BOTO_ERRORS:
        return Limits()
    if not isinstance(env, dict):
        return Limits()
    found = {
        attr: int(env[var])
        for var, attr in _LIMIT_VARIABLES.items()
        if str(env.get(var, "")).isdigit()
    }
    return replace(Limits(), **found)


def _now() -> str:
    return format_datetime(datetime.now(UTC))


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
        self.identity_pool_id: str | None = outputs.get("IdentityPoolId")
        """The identity pool whose identities the stack serves (its ``IdentityPoolId`` output)."""
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

    def _load(self, identity_id: str, name: str) -> DatasetItem:
        key = {"pk": {"S": dataset_pk(identity_id)}, "sk": {"S": name}}
        return DatasetItem.decode(
            self._db.call("get_item", Key=key, ConsistentRead=True).get("Item")
        )

    def _current(self, identity_id: str, name: str, ds: DatasetItem) -> dict[str, StoredRecord]:
        """Every record the dataset item indexes as current (tombstones too), values whole."""
        pk = records_pk(identity_id, name)
        current, chunked = current_records(self._db.query_all(pk, "s#", "s#~"), ds)
        if chunked:
            found = self._db.batch_get(pk, [sk for _, keys in chunked for sk in keys])
            for key, keys in chunked:
                if any(sk not in found for sk in keys):
                    raise ServerError(
                        f"a value chunk of record {key!r} in {identity_id}/{name} is missing "
                        f"from table {self.table}; run again (it may be mid-write)"
                    )
                value = join_chunks([found[sk] for sk in keys])
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
        key = {"pk": {"S": dataset_pk(identity_id)}, "sk": {"S": META_SK}}
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

    def _import(self, identity_id: str, name: str, data: SourceRecords, ds: DatasetItem) -> int:
        stored = self._current(identity_id, name, ds) if ds.exists else {}
        changed = [r for r in data.records if differs(stored.get(r.key), r)]
        merged = sorted(set(ds.merged) | set(data.merged_dataset_names))
        if is_current(ds, data, changed, merged):
            return 0
        for record in changed:
            validate_key(record.key, self.limits)
        revive = not ds.exists or ds.deleted
        if revive:
            check_dataset_count(self._dataset_count(identity_id) + 1, self.limits)
        count, size = check_dataset_totals(
            name,
            {k: r.value for k, r in stored.items()},
            {r.key: r.value for r in changed},
            self.limits,
        )
        now = _now()
        rows, new_count = import_rows(ds, data, changed, now)
        item = dataset_attributes(new_count, deleted=False, count=count, size=size, now=now)
        self._commit(identity_id, name, ds, rows, item, merged, meta=1 if revive else 0)
        return len(rows)

    def _delete(self, identity_id: str, name: str, ds: DatasetItem) -> int:
        """Turn every live record into a tombstone at a new sync count, as deleteDataset does."""
        if not ds.exists or ds.deleted:
            return 0
        now = _now()
        rows = deletion_rows(ds, now)
        item = dataset_attributes(ds.sync_count + 1, deleted=True, count=0, size=0, now=now)
        self._commit(identity_id, name, ds, rows, item, ds.merged, meta=-1)
        return len(rows)

    def _commit(
        self,
        identity_id: str,
        name: str,
        ds: DatasetItem,
        rows: list[Row],
        item: dict[str, Any],
        merged: list[str],
        *,
        meta: int,
    ) -> None:
        """Write-ahead the new items, then the dataset item in one conditional transaction."""
        pk = records_pk(identity_id, name)
        after = ds.sync_count + 1
        # Items above the read sync count are leftovers of an import killed before its commit.
        leftovers = [
            i["sk"]
            for first, last in ((f"s#{after:010d}", "s#~"), (f"c#{after:010d}", "c#~"))
            for i in self._db.query_all(pk, first, last, projection="sk")
        ]
        puts, transaction = commit_items(
            self.table,
            identity_id,
            name,
            ds,
            rows,
            item,
            merged=merged,
            meta=meta,
            leftovers=leftovers,
            max_datasets=self.limits.max_datasets,
        )
        self._db.batch_write([{"PutRequest": {"Item": encode_item(p)}} for p in puts])
        self._db.call(
            "transact_write_items",
            scoped=False,
            answered=lambda code, message, exc: self._refused(code, message, exc, meta),
            TransactItems=transaction,
        )

    def _refused(self, code: str, message: str, exc: ClientError, meta: int) -> CogsyncError:
        """The error for a refused transaction: `_Conflict` if the dataset item moved.

        Raises:
            DatasetLimitExceededError: the ``#meta`` condition failed (the identity is full).
        """
        if code != "TransactionCanceledException":
            return self._db.answered(code, message, exc)
        reasons = [r.get("Code") for r in exc.response.get("CancellationReasons") or ()]
        if meta > 0 and len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
            check_dataset_count(self.limits.max_datasets + 1, self.limits)
        if reasons and reasons[0] == "ConditionalCheckFailed":
            return _Conflict(f"the dataset item changed in table {self.table} meanwhile")
        return ServerError(f"DynamoDB refused the import transaction ({reasons})")
