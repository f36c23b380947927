"""`SyncService`: executes the sync protocol's GraphQL operations for one caller at a time.

The HTTP and WebSocket front-ends authenticate the caller and hand over the identity id;
this module parses, validates and executes the GraphQL document with graphql-core against
`ServerStorage`, and answers in AppSync's shape::

    {"data": ..., "errors": [{"message", "errorType", "errorInfo", "path", "locations"}]}

Rules:

* The caller's identity comes only from the ``identity_id`` argument, never from GraphQL
  arguments; a subscription for another identity is refused.
* Storage calls run on one worker thread (one writer); the event loop never blocks on SQLite.
* A document is parsed, bounded (`cogsync.server.querylimits`) and validated on a worker
  thread, so a heavy request never stalls the event loop; the bytes its resolvers read
  are charged to a `ResponseBudget` on the storage thread, so an answer past
  ``max_response_bytes`` is refused before it is built.
* A change is published to subscribers only after its transaction committed, and carries
  no record values (``records`` is null for subscribers).
* Errors say what was wrong and what to do; unexpected failures are logged here and reach
  the client only as a generic ``InternalFailure``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLResolveInfo,
    OperationType,
    execute,
    get_operation_ast,
    subscribe,
    validate,
)

from cogsync._callbacks import maybe_await
from cogsync.exceptions import (
    ConflictError,
    DatasetLimitExceededError,
    DatasetSizeLimitExceededError,
    LimitExceededError,
    RecordLimitExceededError,
    UsageError,
)
from cogsync.models import PROTOCOL_VERSION, PatchOp, Record, RecordPatch
from cogsync.server.bounds import DEFAULT_SERVER_LIMITS, ServerLimits
from cogsync.server.hooks import ServerHooks, SyncRejected
from cogsync.server.projection import ProjectedEvents, Projection
from cogsync.server.querylimits import (
    ResponseBudget,
    answer_too_large,
    check_document,
    parse_bounded,
    syntax_refusal,
)
from cogsync.server.schema import load_schema
from cogsync.server.storage import DatasetChange, ServerStorage
from cogsync.server.wire import (
    RequestRefused,
    Variables,
    graphql_error,
    graphql_failure,
)

__all__ = ["SubscriptionRefused", "SyncService"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
if TYPE_CHECKING:
    Info = GraphQLResolveInfo[Any]
_QUEUE_SIZE = 1000
_CLOSED = object()
_LIMIT_NAMES: dict[type[LimitExceededError], str] = {
    DatasetLimitExceededError: "datasets",
    RecordLimitExceededError: "records",
    DatasetSizeLimitExceededError: "bytes",
}


SubscriptionRefused = RequestRefused
"""What `SyncService.subscribe` raises to refuse a subscription (`RequestRefused`)."""


def _dataset_change(change: DatasetChange, *, with_records: bool) -> dict[str, Any]:
    return {
        "identityId": change.identity_id,
        "datasetName": change.dataset_name,
        "syncCount": change.sync_count,
        "deleted": change.deleted,
        "records": [_record(r) for r in change.records] if with_records else None,
    }


def _record(record: Record) -> dict[str, Any]:
    return {
        "key": record.key,
        "value": record.value,
        "syncCount": record.sync_count,
        "lastModifiedDate": record.last_modified_date,
        "lastModifiedBy": record.last_modified_by,
        "deviceLastModifiedDate": record.device_last_modified_date,
    }


def _error_type(exc: BaseException) -> tuple[str, dict[str, Any] | None] | None:
    """AppSync's errorType and errorInfo for an expected error; None if unexpected."""
    if isinstance(exc, RequestRefused):
        return exc.error_type, None
    if isinstance(exc, ConflictError):
        return "ConflictException", {
            "key": exc.key,
            "current": exc.current,
            "expected": exc.expected,
        }
    if isinstance(exc, LimitExceededError):
        name = next((n for t, n in _LIMIT_NAMES.items() if isinstance(exc, t)), "records")
        return "LimitExceededException", {
            "limit": name,
            "max": exc.limit,
            "attempted": exc.attempted,
        }
    if isinstance(exc, SyncRejected):
        return "InvalidParameterException", {"rejectedBy": "syncTrigger"}
    if isinstance(exc, UsageError):
        return "InvalidParameterException", None
    return None


def _format_error(error: GraphQLError) -> dict[str, Any]:
    original = error.original_error
    mapped = _error_type(original) if original is not None else None
    message = error.message
    if mapped is None and error.path is None:
        mapped = ("ValidationError", None)  # variables, operation selection, coercion
    if mapped is None:
        logger.error("GraphQL resolver failed at %s: %s", error.path, error, exc_info=original)
        mapped = ("InternalFailure", None)
        message = "the server failed to handle this request; retry later (see the server log)"
    locations = error.locations
    return graphql_error(
        mapped[0],
        message,
        mapped[1],
        list(error.path) if error.path is not None else None,
        [{"line": loc.line, "column": loc.column} for loc in locations] if locations else None,
    )


def _response(result: ExecutionResult) -> dict[str, Any]:
    response: dict[str, Any] = {"data": result.data}
    if result.errors:
        response["errors"] = [_format_error(e) for e in result.errors]
    return response


class _Hub:
    """In-process pub/sub: one bounded queue per open subscription, grouped by identity."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[object]]] = {}
        self.sent = 0  # notifications queued for a subscriber
        self.dropped = 0  # notifications a stalled subscriber lost

    def register(self, identity_id: str) -> asyncio.Queue[object]:
        queue: asyncio.Queue[object] = asyncio.Queue(_QUEUE_SIZE)
        self._queues.setdefault(identity_id, set()).add(queue)
        return queue

    def unregister(self, identity_id: str, queue: asyncio.Queue[object]) -> None:
        queues = self._queues.get(identity_id, set())
        queues.discard(queue)
        if not queues:
            self._queues.pop(identity_id, None)

    def subscriber_count(self, identity_id: str) -> int:
        return len(self._queues.get(identity_id, ()))

    def publish(self, identity_id: str, event: object) -> None:
        for queue in list(self._queues.get(identity_id, ())):
            if queue.full():  # a stalled subscriber loses its oldest pokes, never blocks others
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait(event)
            self.sent += 1

    def close(self) -> None:
        for queues in list(self._queues.values()):
            for queue in queues:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(_CLOSED)


class _EventSource:
    """The source stream of one subscription; registered from creation until closed."""

    def __init__(self, hub: _Hub, identity_id: str) -> None:
        self._hub, self._identity_id = hub, identity_id
        self._queue = hub.register(identity_id)

    def __aiter__(self) -> _EventSource:
        return self

    async def __anext__(self) -> object:
        event = await self._queue.get()
        if event is _CLOSED:
            self.close()
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        self._hub.unregister(self._identity_id, self._queue)

    async def aclose(self) -> None:
        self.close()


class _Subscription:
    """What `SyncService.subscribe` returns: AppSync-shaped events until ``aclose()``."""

    def __init__(self, stream: AsyncIterator[ExecutionResult], source: _EventSource) -> None:
        self._stream, self._source = stream, source

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return _response(await self._stream.__anext__())

    async def aclose(self) -> None:
        self._source.close()
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


def _record_size(budget: ResponseBudget, record: Record) -> int:
    texts = {"key": record.key, "value": record.value, "lastModifiedBy": record.last_modified_by}
    return budget.text_size(texts)


class _Root:
    """Root value of one operation: the resolvers, bound to the caller's identity."""

    def __init__(self, service: SyncService, identity_id: str, budget: ResponseBudget) -> None:
        self._service, self._identity, self._budget = service, identity_id, budget
        self.source: _EventSource | None = None

    async def _read(self, function: Callable[[], _T], size: Callable[[_T], int]) -> _T:
        """Run a storage read on the storage thread, charging its answer to the budget.

        The budget is checked before and charged right after each read, on the storage
        thread itself, so reads past the bound are never made.
        """
        budget = self._budget

        def read() -> _T:
            budget.check()
            result = function()
            budget.charge(size(result))
            return result

        return await self._service.run(read)

    def serverInfo(self, _info: Info) -> dict[str, int]:
        limits = self._service.storage.limits
        return {
            "protocolVersion": PROTOCOL_VERSION,
            "maxDatasets": limits.max_datasets,
            "maxRecords": limits.max_records,
            "maxDatasetBytes": limits.max_dataset_bytes,
            "maxKeyBytes": limits.max_key_bytes,
        }

    async def listDatasets(
        self, _info: Info, nextToken: str | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        storage, budget = self._service.storage, self._budget
        page = await self._read(
            partial(storage.list_datasets, self._identity, next_token=nextToken, limit=limit),
            lambda p: sum(budget.text_size({"name": d.name}) for d in p.datasets),
        )
        datasets = [
            {
                "name": d.name,
                "syncCount": d.sync_count,
                "sizeInBytes": d.size_in_bytes,
                "recordCount": d.record_count,
                "lastModifiedDate": d.last_modified,
                "deleted": d.deleted,
            }
            for d in page.datasets
        ]
        return {"datasets": datasets, "nextToken": page.next_token}

    async def listRecords(self, _info: Info, **args: Any) -> dict[str, Any]:
        read = partial(
            self._service.storage.list_records,
            self._identity,
            args["datasetName"],
            args["lastSyncCount"],
            next_token=args.get("nextToken"),
            limit=args.get("limit"),
        )
        budget = self._budget
        page = await self._read(read, lambda p: sum(_record_size(budget, r) for r in p.records))
        return {
            "datasetName": page.dataset_name,
            "syncCount": page.sync_count,
            "deleted": page.deleted,
            "mergedDatasetNames": list(page.merged_dataset_names),
            "records": [_record(r) for r in page.records],
            "nextToken": page.next_token,
        }

    async def pushRecords(self, _info: Info, input: dict[str, Any]) -> dict[str, Any]:
        patches = [
            RecordPatch(
                PatchOp(p["op"]),
                p["key"],
                p.get("value"),
                p["syncCount"],
                p.get("deviceLastModifiedDate"),
            )
            for p in input["records"]
        ]
        change = await self._service.run(
            self._service.storage.push_records,
            self._identity,
            input["datasetName"],
            patches,
            client_request_id=input["clientRequestId"],
            device_id=input["deviceId"],
            protocol_version=input["protocolVersion"],
            trigger=self._service.hooks.sync_trigger,
        )
        self._service.publish(change)
        self._budget.charge(sum(_record_size(self._budget, r) for r in change.records))
        return _dataset_change(change, with_records=True)

    async def deleteDataset(
        self, _info: Info, datasetName: str, clientRequestId: str
    ) -> dict[str, Any]:
        change = await self._service.run(
            self._service.storage.delete_dataset,
            self._identity,
            datasetName,
            client_request_id=clientRequestId,
        )
        self._service.publish(change)
        return _dataset_change(change, with_records=True)

    def onDatasetChanged(self, _info: Info, identityId: str) -> _EventSource:
        if identityId != self._identity:
            raise RequestRefused(
                "UnauthorizedException",
                "onDatasetChanged may only be opened for the caller's own identity: pass "
                "identityId equal to the identity of the signing credentials",
            )
        self.source = _EventSource(self._service.hub, self._identity)
        return self.source


class SyncService:
    """The GraphQL side of `cogsync serve` over one `ServerStorage`.

    Args:
        storage: the store; the service runs every call of it on one worker thread.
        hooks: the operator's hooks (sync trigger).
        server_limits: the bounds on documents and answers.
    """

    def __init__(
        self,
        storage: ServerStorage,
        *,
        hooks: ServerHooks | None = None,
        server_limits: ServerLimits = DEFAULT_SERVER_LIMITS,
    ) -> None:
        self.storage = storage
        self.hooks = hooks or ServerHooks()
        self.server_limits = server_limits
        self.hub = _Hub()
        self.schema = load_schema()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="cogsync-storage")
        self._documents = ThreadPoolExecutor(2, thread_name_prefix="cogsync-graphql")

    async def run(self, function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run a blocking storage call on the storage thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(function, *args, **kwargs))

    def publish(self, change: DatasetChange) -> None:
        """Tell the identity's subscribers about an applied change (no values)."""
        if change.applied:
            event = {"onDatasetChanged": _dataset_change(change, with_records=False)}
            self.hub.publish(change.identity_id, event)

    async def merge_identity(self, source_identity_id: str, target_identity_id: str) -> list[str]:
        """Merge ``source``'s datasets into ``target`` (see `ServerStorage.merge_identity`)."""
        changes = await self.run(
            self.storage.merge_identity, source_identity_id, target_identity_id
        )
        for change in changes:
            self.publish(change)
        return [c.dataset_name for c in changes]

    def close(self) -> None:
        """End every open subscription and stop the storage thread (the storage stays open)."""
        self.hub.close()
        self._executor.shutdown(wait=True)
        self._documents.shutdown(wait=True)

    def _check(self, query: object) -> tuple[DocumentNode, ResponseBudget] | list[dict[str, Any]]:
        """The parsed, bounded, validated document and its answer's budget, or the errors."""
        if not isinstance(query, str):
            return [graphql_error("BadRequestException", "query must be a GraphQL document string")]
        limits = self.server_limits
        try:
            document = parse_bounded(query, limits)
            selected = check_document(document, limits)
        except GraphQLError as exc:
            refusal = syntax_refusal(exc)
            return [graphql_error(refusal.error_type, refusal.message)]
        except RequestRefused as exc:
            return [graphql_error(exc.error_type, exc.message)]
        errors = validate(self.schema, document)
        if errors:
            return [_format_error(e) for e in errors]
        return document, ResponseBudget(limits.max_response_bytes, selected)

    async def _document(
        self, query: object
    ) -> tuple[DocumentNode, ResponseBudget] | list[dict[str, Any]]:
        """`_check` on a worker thread: a heavy document never stalls the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._documents, self._check, query)

    async def execute(
        self, identity_id: str, query: str, variables: Variables, operation_name: str | None
    ) -> dict[str, Any]:
        """Run a query or mutation for ``identity_id``; return the AppSync-shaped response."""
        try:
            checked = await self._document(query)
            if isinstance(checked, list):
                return {"data": None, "errors": checked}
            document, budget = checked
            _check_request(variables, operation_name)
            operation = get_operation_ast(document, operation_name)
            if operation is not None and operation.operation is OperationType.SUBSCRIPTION:
                raise RequestRefused(
                    "BadRequestException",
                    "subscriptions are not served over HTTP: open them on the real-time "
                    "WebSocket endpoint",
                )
            result = await maybe_await(
                execute(
                    self.schema,
                    document,
                    root_value=_Root(self, identity_id, budget),
                    variable_values=variables,
                    operation_name=operation_name,
                )
            )
            if budget.exceeded:
                return graphql_failure(answer_too_large(budget.limit))
            return _response(result)
        except RequestRefused as exc:
            return graphql_failure(exc)
        except Exception:
            logger.exception("GraphQL request failed")
            failed = "the server failed to handle this request"
            return graphql_failure(RequestRefused("InternalFailure", failed))

    async def subscribe(
        self, identity_id: str, query: str, variables: Variables, operation_name: str | None
    ) -> AsyncIterator[dict[str, Any]]:
        """Open an onDatasetChanged subscription for ``identity_id``.

        Returns an async iterator of AppSync-shaped events (``{"data": {...}}``); close it
        with ``aclose()``.

        Raises:
            RequestRefused: the document is invalid, not an onDatasetChanged subscription,
                or asks for another identity's changes.
        """
        checked = await self._document(query)
        if isinstance(checked, list):
            raise RequestRefused(checked[0]["errorType"], checked[0]["message"])
        document, budget = checked
        if variables is not None and not isinstance(variables, dict):
            raise RequestRefused("BadRequestException", "variables must be a JSON object")
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
            raise RequestRefused(
                "BadRequestException",
                "send exactly one subscription operation (onDatasetChanged), or name it with "
                "operationName; queries and mutations go to the HTTP endpoint",
            )
        root = _Root(self, identity_id, budget)
        result = await maybe_await(
            subscribe(
                self.schema,
                document,
                root_value=root,
                variable_values=variables,
                operation_name=operation_name,
            )
        )
        if isinstance(result, ExecutionResult) or root.source is None:
            if root.source is not None:
                root.source.close()
            errors = (result.errors if isinstance(result, ExecutionResult) else None) or []
            formatted = [_format_error(e) for e in errors] or [
                {"errorType": "BadRequestException", "message": "subscription not started"}
            ]
            raise RequestRefused(formatted[0]["errorType"], formatted[0]["message"])
        # graphql-core validated and started it; each event is projected (no per-event leak)
        projection = Projection(self.schema, document, variables, operation_name)
        return _Subscription(ProjectedEvents(root.source, projection), root.source)


def _check_request(variables: object, operation_name: object) -> None:
    if variables is not None and not isinstance(variables, dict):
        raise RequestRefused("BadRequestException", "variables must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestRefused("BadRequestException", "operationName must be a string")
