"""`SyncService`: executes the sync protocol's GraphQL operations for one caller at a time.

The HTTP and WebSocket front-ends authenticate the caller and hand over the identity id;
this module checks the GraphQL document and executes it against `ServerStorage`, with
graphql-core or, for the client's own documents, their compiled operations
(`cogsync.server.compiled`, the same answers byte for byte), and answers in AppSync's
shape (`cogsync.server.answers`)::

    {"data": ..., "errors": [{"message", "errorType", "errorInfo", "path", "locations"}]}

Rules:

* The caller's identity comes only from the ``identity_id`` argument, never from GraphQL
  arguments; a subscription for another identity is refused.
* Storage calls run on one worker thread (one writer); the event loop never blocks on SQLite.
* A document is parsed, bounded (`cogsync.server.querylimits`) and validated on a worker
  thread, so a heavy request never stalls the event loop, once per text
  (`cogsync.server.documents` remembers the outcome); the bytes its resolvers read
  are charged to a `ResponseBudget` on the storage thread, so an answer past
  ``max_response_bytes`` is refused before it is built.
* A change is published to subscribers only after its transaction committed, and carries
  no record values (``records`` is null for subscribers).
* Errors say what was wrong and what to do; unexpected failures are logged and reach the
  client only as a generic ``InternalFailure``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from graphql import (
    ExecutionResult,
    GraphQLResolveInfo,
    OperationType,
    execute,
    get_operation_ast,
    subscribe,
)

from cogsync._callbacks import maybe_await
from cogsync.models import PROTOCOL_VERSION, PatchOp, Record, RecordPatch
from cogsync.server.answers import format_error, response
from cogsync.server.bounds import DEFAULT_SERVER_LIMITS, ServerLimits
from cogsync.server.compiled import CompiledOperation
from cogsync.server.documents import CheckedDocument, DocumentCache, Outcome
from cogsync.server.hooks import ServerHooks
from cogsync.server.projection import ProjectedEvents, Projection
from cogsync.server.querylimits import ResponseBudget, answer_too_large
from cogsync.server.schema import load_schema
from cogsync.server.storage import DatasetChange, ServerStorage
from cogsync.server.transactions import GroupCommitThread
from cogsync.server.wire import RequestRefused, Variables, graphql_failure

__all__ = ["SubscriptionRefused", "SyncService"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
if TYPE_CHECKING:
    Info = GraphQLResolveInfo[Any]
_QUEUE_SIZE = 1000
_CLOSED = object()


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
        return response(await self._stream.__anext__())

    async def aclose(self) -> None:
        self._source.close()
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


def _records_size(budget: ResponseBudget, records: Sequence[Record]) -> int:
    """`ResponseBudget.text_size` of each record's key, value and device id, summed."""
    selected, size = budget.selected, len(records)
    if "key" in selected:
        size += sum(len(r.key) for r in records)
    if "value" in selected:
        size += sum(len(r.value) for r in records if r.value is not None)
    if "lastModifiedBy" in selected:
        size += sum(len(r.last_modified_by) for r in records if r.last_modified_by is not None)
    return size


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
        page = await self._read(read, lambda p: _records_size(budget, p.records))
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
        self._budget.charge(_records_size(self._budget, change.records))
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
        compiled_documents: answer the client's own documents by their compiled
            operations (`cogsync.server.compiled`; same answers, less CPU); False runs
            every document through graphql-core (to compare).
    """

    def __init__(
        self,
        storage: ServerStorage,
        *,
        hooks: ServerHooks | None = None,
        server_limits: ServerLimits = DEFAULT_SERVER_LIMITS,
        compiled_documents: bool = True,
    ) -> None:
        self.storage = storage
        self.hooks = hooks or ServerHooks()
        self.server_limits = server_limits
        self.compiled_documents = compiled_documents
        self.hub = _Hub()
        self.schema = load_schema()
        self.documents = DocumentCache(self.schema, server_limits)
        self._storage_thread = GroupCommitThread(storage.group)
        self._documents = ThreadPoolExecutor(2, thread_name_prefix="cogsync-graphql")

    async def run(self, function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run a blocking storage call on the storage thread and await its result (given
        once the commit holding the call is durable: calls queued together share one)."""
        return await self._storage_thread.run(function, *args, **kwargs)

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
        self._storage_thread.close()
        self._documents.shutdown(wait=True)

    async def _document(self, query: object) -> Outcome:
        """The checked document: remembered, or checked on a worker thread (a heavy
        document never stalls the event loop)."""
        outcome = self.documents.get(query) if isinstance(query, str) else None
        if outcome is not None:
            return outcome
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._documents, self.documents.check, query)

    async def execute(
        self, identity_id: str, query: str, variables: Variables, operation_name: str | None
    ) -> dict[str, Any]:
        """Run a query or mutation for ``identity_id``; return the AppSync-shaped response."""
        try:
            checked = await self._document(query)
            if isinstance(checked, list):
                return {"data": None, "errors": checked}
            _check_request(variables, operation_name)
            budget = ResponseBudget(self.server_limits.max_response_bytes, checked.selected)
            root = _Root(self, identity_id, budget)
            compiled = checked.compiled if self.compiled_documents else None
            arguments = compiled.arguments(variables, operation_name) if compiled else None
            if compiled is not None and arguments is not None:
                result = await self._run_compiled(compiled, root, arguments, checked, variables)
            else:
                result = await self._run(checked, root, variables, operation_name)
            if budget.exceeded:
                return graphql_failure(answer_too_large(budget.limit))
            return response(result)
        except RequestRefused as exc:
            return graphql_failure(exc)
        except Exception:
            logger.exception("GraphQL request failed")
            failed = "the server failed to handle this request"
            return graphql_failure(RequestRefused("InternalFailure", failed))

    async def _run(
        self, checked: CheckedDocument, root: object, variables: Variables, name: str | None
    ) -> ExecutionResult:
        """Execute a query or mutation with graphql-core."""
        operation = get_operation_ast(checked.document, name)
        if operation is not None and operation.operation is OperationType.SUBSCRIPTION:
            raise RequestRefused(
                "BadRequestException",
                "subscriptions are not served over HTTP: open them on the real-time "
                "WebSocket endpoint",
            )
        result: ExecutionResult = await maybe_await(
            execute(
                self.schema,
                checked.document,
                root_value=root,
                variable_values=variables,
                operation_name=name,
            )
        )
        return result

    async def _run_compiled(
        self,
        compiled: CompiledOperation,
        root: _Root,
        arguments: dict[str, Any],
        checked: CheckedDocument,
        variables: Variables,
    ) -> ExecutionResult:
        """Call the resolver directly and complete its value without graphql-core."""
        try:
            value = await getattr(root, compiled.field)(None, **arguments)
        except Exception as exc:
            return compiled.failure(exc)
        result = compiled.complete(value)
        if result is None:  # a value the compiled path does not vouch for
            resolved = {compiled.field: value}
            result = await self._run(checked, resolved, variables, compiled.operation_name)
        return result

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
        document = checked.document
        budget = ResponseBudget(self.server_limits.max_response_bytes, checked.selected)
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
            formatted = [format_error(e) for e in errors] or [
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
