"""`GraphQLBackend`: the `RemoteBackend` over HTTP GraphQL signed with SigV4 (AppSync or
``cogsync serve``).

One gql session (one aiohttp connection pool) lives from the first call to `close`.
Requests are signed with `AppSyncIAMAuthentication` from the identity's temporary
credentials; a new signer is built whenever the credentials are renewed. Answers are
parsed into `cogsync.models` here, and failures become cogsync errors here:

- no connection, timeout, dropped connection        -> `OfflineError`
- HTTP 401/403, ``UnauthorizedException``           -> `NotAuthorizedError`
- ``ConflictException`` {key, current, expected}    -> `ConflictError`
- ``LimitExceededException`` {limit, max, attempted} -> a `LimitExceededError` subclass
- ``InvalidParameterException``                     -> a `UsageError` subclass
- anything else                                     -> `ServerError`
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import io
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from botocore.credentials import Credentials
from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.appsync_auth import AppSyncIAMAuthentication
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportError,
    TransportQueryError,
    TransportServerError,
)
from graphql import DocumentNode, parse, print_ast
from graphql.utilities import strip_ignored_characters

from cogsync import exceptions
from cogsync._closing import AsyncClosing
from cogsync._signing import iam_auth
from cogsync.auth.cognito import CognitoIdentity
from cogsync.config import Config
from cogsync.exceptions import (
    CogsyncError,
    ConflictError,
    LimitExceededError,
    NotAuthorizedError,
    OfflineError,
    ServerError,
    UsageError,
)
from cogsync.models import (
    PROTOCOL_VERSION,
    PushResult,
    RecordPage,
    RecordPatch,
    RemoteDataset,
    ServerInfo,
    patch_rows,
)
from cogsync.remote import operations
from cogsync.remote.payloads import (
    PushPatches,
    answer_int,
    answer_list,
    answer_object,
    answer_str,
    decode_records,
    dumps_body,
    format_datetime,
    optional_int,
    parse_datetime,
)

__all__ = ["GraphQLBackend", "format_datetime", "parse_datetime", "translate_graphql_error"]


def _package_version() -> str:
    try:
        return importlib.metadata.version("cogsync")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "dev"


_LIMIT_ERRORS: dict[str, type[LimitExceededError]] = {
    "datasets": exceptions.DatasetLimitExceededError,
    "records": exceptions.RecordLimitExceededError,
    "bytes": exceptions.DatasetSizeLimitExceededError,
}

# errorTypes of refused signatures or credentials (AWS's and AppSync's names).
_AUTH_ERRORS = (
    "UnauthorizedException",
    "InvalidSignatureException",
    "IncompleteSignatureException",
    "MissingAuthenticationTokenException",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "AccessDeniedException",
)

# How the server's InvalidParameterException messages name the culprit.
_PARAMETER_ERRORS: tuple[tuple[str, type[UsageError]], ...] = (
    ("dataset name", exceptions.InvalidNameError),
    ("record key", exceptions.InvalidKeyError),
    ("record value", exceptions.InvalidValueError),
)


class GraphQLBackend(AsyncClosing):
    """One identity's view of a GraphQL sync server.

    Args:
        config: the endpoints (``graphql_url``) and region to sign for.
        identity: supplies the identity's temporary credentials.
        timeout: seconds allowed per request before the server counts as unreachable.
        page_size: records or datasets per page asked for; None takes the server's default.
    """

    def __init__(
        self,
        config: Config,
        identity: CognitoIdentity,
        *,
        timeout: float = 30.0,
        page_size: int | None = None,
    ) -> None:
        self._config = config
        self._page_size = page_size
        self._identity = identity
        self._timeout = timeout
        self._host = urlsplit(config.graphql_url).netloc
        self._transport: AIOHTTPTransport | None = None
        self._client: Client | None = None
        self._session: Any = None
        self._signed_with: Credentials | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        # Pages fetched ahead stay as parsed JSON until taken: their dicts of strings and
        # numbers are no work for the garbage collector, 1,024 `Record` objects each are.
        self._ahead: dict[tuple[str, int], asyncio.Future[dict[str, Any]]] = {}

    async def server_info(self) -> ServerInfo:
        """Protocol version and limits the server enforces."""
        data = await self._execute(operations.SERVER_INFO, {})
        info = answer_object(data, "serverInfo")
        return ServerInfo(
            protocol_version=answer_int(info, "protocolVersion"),
            max_datasets=answer_int(info, "maxDatasets"),
            max_records=answer_int(info, "maxRecords"),
            max_dataset_bytes=answer_int(info, "maxDatasetBytes"),
            max_key_bytes=answer_int(info, "maxKeyBytes"),
        )

    async def list_datasets(self) -> list[RemoteDataset]:
        """All datasets of the caller (every page), deleted ones included."""
        datasets: list[RemoteDataset] = []
        token: str | None = None
        while True:
            data = await self._execute(
                operations.LIST_DATASETS, {"nextToken": token, "limit": self._page_size}
            )
            page = answer_object(data, "listDatasets")
            for item in answer_list(page, "datasets"):
                datasets.append(
                    RemoteDataset(
                        name=answer_str(item, "name"),
                        sync_count=answer_int(item, "syncCount"),
                        size_in_bytes=answer_int(item, "sizeInBytes"),
                        record_count=answer_int(item, "recordCount"),
                        last_modified=parse_datetime(item.get("lastModifiedDate")),
                        deleted=bool(item.get("deleted")),
                    )
                )
            token = page.get("nextToken")
            if not token:
                return datasets

    async def list_records(
        self, dataset_name: str, last_sync_count: int, next_token: str | None = None
    ) -> RecordPage:
        """One page of records with sync_count > ``last_sync_count`` (tombstones included).

        A first page asked for ahead (`fetch_ahead`) is taken instead of asking again
        (unless asking ahead already failed: then it is asked for again now).
        """
        if next_token is None:
            ahead = self._ahead.pop((dataset_name, last_sync_count), None)
            failed = ahead is not None and ahead.done() and (ahead.cancelled() or ahead.exception())
            if ahead is not None and not failed:
                return _record_page(await ahead)
        return _record_page(await self._fetch_page(dataset_name, last_sync_count, next_token))

    def fetch_ahead(self, dataset_name: str, last_sync_count: int) -> None:
        """Start fetching the first page of records since ``last_sync_count``; the next
        `list_records` of that page takes it (`AsyncClient.synchronize_all` asks for the
        datasets it syncs next while others sync, so the server works meanwhile)."""
        key = (dataset_name, last_sync_count)
        if not self._closed and key not in self._ahead:
            page = self._fetch_page(dataset_name, last_sync_count, None)
            self._ahead[key] = asyncio.ensure_future(page)

    def drop_ahead(self) -> None:
        """Forget the pages fetched ahead and not taken, stopping those still on their way."""
        ahead, self._ahead = self._ahead, {}
        for future in ahead.values():
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # an unused failure is no error of anyone's

    async def _fetch_page(
        self, dataset_name: str, last_sync_count: int, next_token: str | None
    ) -> dict[str, Any]:
        variables = {
            "datasetName": dataset_name,
            "lastSyncCount": last_sync_count,
            "nextToken": next_token,
            "limit": self._page_size,
        }
        data = await self._execute(operations.LIST_RECORDS, variables)
        return answer_object(data, "listRecords")

    async def push_records(
        self,
        dataset_name: str,
        patches: Sequence[RecordPatch],
        *,
        client_request_id: str,
        device_id: str,
    ) -> PushResult:
        """Apply ``patches`` all-or-nothing as one new sync count.

        The answer carries record metadata only; values are taken from ``patches``.
        """
        variables = {
            "input": {
                "datasetName": dataset_name,
                "clientRequestId": client_request_id,
                "deviceId": device_id,
                "protocolVersion": PROTOCOL_VERSION,
                "records": PushPatches(patches),
            }
        }
        data = await self._execute(operations.PUSH_RECORDS, variables)
        change = answer_object(data, "pushRecords")
        items = change.get("records") or []
        sent = {row[1]: row[2] for row in patch_rows(patches)}
        for item in items if type(items) is list else ():  # the answer carries no values
            if type(item) is dict and type(key := item.get("key")) is str:
                item["value"] = sent.get(key)
        return PushResult(
            dataset_name=answer_str(change, "datasetName"),
            sync_count=answer_int(change, "syncCount"),
            records=decode_records({"records": items}),
        )

    async def delete_dataset(self, dataset_name: str, *, client_request_id: str) -> int:
        """Delete a dataset (the server keeps a tombstone); return its new sync count."""
        variables = {"datasetName": dataset_name, "clientRequestId": client_request_id}
        data = await self._execute(operations.DELETE_DATASET, variables)
        return answer_int(answer_object(data, "deleteDataset"), "syncCount")

    async def close(self) -> None:
        """Close the HTTP session; the backend cannot be used afterwards."""
        self._closed = True
        self.drop_ahead()
        async with self._lock:
            client, self._client, self._session = self._client, None, None
            if client is not None:
                await client.close_async()  # type: ignore[no-untyped-call]

    async def _execute(self, document: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        # An absent variable is null to GraphQL: unset optional ones need no bytes.
        request = _Request(document, {k: v for k, v in variables.items() if v is not None})
        for attempt in (1, 2):
            session = await self._ready_session()
            try:
                result = await session.execute(request)
            except TransportError as exc:
                error = translate_transport_error(exc)
                if attempt == 1 and _stale_connection(exc):
                    # A pooled keep-alive connection was closed under us (idle timeout, server
                    # restart): retry once on a fresh one. Pushes are idempotent by request id.
                    continue
                if isinstance(error, NotAuthorizedError) and attempt == 1:
                    # The server may have forgotten the credentials it issued (it
                    # restarted): one retry with new ones tells that from a real refusal.
                    self._identity.invalidate_credentials()
                    continue
                raise error from exc
            if not isinstance(result, dict):
                raise ServerError("the GraphQL server answered without a data object")
            return result
        raise AssertionError("unreachable")

    async def _ready_session(self) -> Any:
        if self._closed:
            raise RuntimeError("this GraphQLBackend is closed; create a new one")
        credentials = await self._identity.credentials()
        async with self._lock:
            if self._session is None:
                self._transport = _StreamingTransport(
                    url=self._config.graphql_url,
                    auth=self._signer(credentials),
                    timeout=self._timeout,  # type: ignore[arg-type]
                    json_deserialize=orjson.loads,
                    client_session_args=_SESSION_ARGS,
                )
                self._client = Client(transport=self._transport, fetch_schema_from_transport=False)
                try:
                    self._session = await self._client.connect_async()  # type: ignore[no-untyped-call]
                except TransportError as exc:
                    self._client = None
                    raise translate_transport_error(exc) from exc
                self._signed_with = credentials
            elif credentials is not self._signed_with:
                assert self._transport is not None
                self._transport.auth = self._signer(credentials)
                self._signed_with = credentials
            return self._session

    def _signer(self, credentials: Credentials) -> AppSyncIAMAuthentication:
        return iam_auth(self._host, self._config.region, credentials)


class _StreamingTransport(AIOHTTPTransport):
    """gql's aiohttp transport, sending the signed JSON body as a stream.

    aiohttp refuses to send raw bodies over 1 MiB without a warning (they may block the
    loop); a full 1 MB dataset push is larger, so the body goes out as a file-like payload.
    The bytes are exactly those the AppSync signature covers; the document is sent with
    its ignored characters (indentation, line breaks) stripped.
    """

    def _prepare_request(
        self,
        request: GraphQLRequest | list[GraphQLRequest],
        extra_args: dict[str, Any] | None = None,
        upload_files: bool = False,
    ) -> dict[str, Any]:
        if upload_files or not isinstance(request, GraphQLRequest):
            post_args: dict[str, Any] = super()._prepare_request(request, extra_args, upload_files)
            return post_args
        if isinstance(request, _Request):
            payload: dict[str, Any] = {"query": request.text}
            if request.variable_values:
                payload["variables"] = request.variable_values
        else:
            payload = dict(request.payload)
            payload["query"] = strip_ignored_characters(payload["query"])  # fewer bytes
        body = dumps_body(payload)
        headers = {"content-type": "application/json"}
        if isinstance(self.auth, AppSyncIAMAuthentication):
            headers = self.auth.get_headers(body, headers)  # type: ignore[arg-type]  # bytes sign
        post_args = {"data": io.BytesIO(body), "headers": headers}
        post_args.update(extra_args or {})
        return post_args


class _Request(GraphQLRequest):
    """A request for one of the client's few documents, each parsed and printed once.

    ``text`` is the document as sent: printed from its syntax tree, ignored characters
    stripped (the bytes gql's own payload would carry, stripped, without the per-request
    parse and print).
    """

    def __init__(self, document: str, variables: dict[str, Any]) -> None:
        parsed, self.text = _prepared(document)
        super().__init__(parsed, variable_values=variables)


@functools.lru_cache(maxsize=32)
def _prepared(document: str) -> tuple[DocumentNode, str]:
    parsed = parse(document)
    return parsed, strip_ignored_characters(print_ast(parsed))


def _stale_connection(exc: TransportError) -> bool:
    cause = exc.__cause__
    return isinstance(exc, TransportConnectionFailed) and isinstance(
        cause, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError
    )


def translate_transport_error(exc: TransportError) -> CogsyncError:
    """The cogsync error for a gql transport failure (query errors included)."""
    if isinstance(exc, TransportQueryError):
        errors = exc.errors or [{"message": str(exc)}]
        return translate_graphql_error(errors[0] if isinstance(errors[0], dict) else {})
    if isinstance(exc, TransportServerError) and exc.code in (401, 403):
        return NotAuthorizedError(
            f"the GraphQL server refused the request's signature (HTTP {exc.code}): check the "
            "identity pool and log in again"
        )
    if isinstance(exc, TransportServerError) and exc.code is not None:
        return ServerError(f"the GraphQL server failed (HTTP {exc.code}): {exc}; retry later")
    if isinstance(exc, TransportConnectionFailed):
        return OfflineError(
            f"cannot reach the GraphQL server ({exc.__cause__ or exc}); local data is intact, "
            "retry later"
        )
    return ServerError(f"the GraphQL server answered outside the protocol: {exc}")


def translate_graphql_error(error: Mapping[str, Any]) -> CogsyncError:
    """The cogsync error for one AppSync-style GraphQL error (``errorType``/``errorInfo``)."""
    kind = str(error.get("errorType") or "")
    message = str(error.get("message") or kind or "unknown error")
    info = error.get("errorInfo")
    info = info if isinstance(info, dict) else {}
    if kind.endswith(_AUTH_ERRORS):
        return NotAuthorizedError(
            f"the server refused the request's credentials ({kind}: {message}); log in "
            "again, and check the device clock"
        )
    if kind == "ConflictException":
        return ConflictError(
            f"the server holds newer data: {message}; synchronize again",
            key=info.get("key"),
            current=optional_int(info.get("current")),
            expected=optional_int(info.get("expected")),
        )
    if kind == "LimitExceededException":
        error_class = _LIMIT_ERRORS.get(str(info.get("limit")), LimitExceededError)
        return error_class(
            f"the server refused a write that would exceed a limit: {message}",
            limit=optional_int(info.get("max")) or 0,
            attempted=optional_int(info.get("attempted")) or 0,
        )
    if kind == "InvalidParameterException":
        return _usage_error(message, info)
    return ServerError(f"the server failed: {kind + ': ' if kind else ''}{message}")


def _usage_error(message: str, info: Mapping[str, Any]) -> UsageError:
    text = f"the server rejected the request: {message}"
    if info.get("rejectedBy") == "syncTrigger":
        return UsageError(f"the server's sync trigger rejected the update: {message}")
    lowered = message.lower()
    for phrase, error_class in _PARAMETER_ERRORS:
        if phrase in lowered:
            return error_class(text)
    if "protocol" in lowered:
        return UsageError(f"{text}; client and server speak different protocol versions")
    return UsageError(text)


# A short User-Agent that names the client (for server logs), and no ``Accept: */*``: both
# cross the wire with every request.
_SESSION_ARGS: dict[str, Any] = {
    "headers": {"User-Agent": f"cogsync/{_package_version()}"},
    "skip_auto_headers": ("Accept",),
}


def _record_page(page: dict[str, Any]) -> RecordPage:
    """The `RecordPage` of a listRecords answer."""
    return RecordPage(
        dataset_name=answer_str(page, "datasetName"),
        sync_count=answer_int(page, "syncCount"),
        deleted=bool(page.get("deleted")),
        records=decode_records(page),
        next_token=page.get("nextToken") or None,
        merged_dataset_names=tuple(str(n) for n in page.get("mergedDatasetNames") or ()),
    )
