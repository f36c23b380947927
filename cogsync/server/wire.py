"""The wire layer of `cogsync serve`: request parsing, the one refusal type, error rendering.

Every refusal the server answers (a bad signature, a malformed request, an invalid
subscription, a wrong parameter) is a `RequestRefused` carrying AppSync's / AWS's error type,
a message saying what to do and, where the protocol has one, an HTTP status. The front-ends
render it in the shape their protocol speaks:

* `appsync_error_response`: ``{"errors": [{"errorType", "message"}]}`` on ``/graphql``;
* `aws_error_response`: ``{"__type", "message"}`` on the Cognito Identity and admin APIs;
* `realtime_error_payload`: the ``payload`` of a real-time ``error`` / ``connection_error``
  message, with ``errorCode`` when the refusal has a status;
* `graphql_error`: one entry of a GraphQL response's ``errors`` (with ``errorInfo``,
  ``path`` and ``locations``).

`decode_json` is the one way a front-end decodes client JSON (HTTP bodies, the real-time
messages and auth header): text that is not JSON, or nests too deeply for Python's decoder,
becomes a `RequestRefused`, never an unexpected exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from aiohttp import web

from cogsync.exceptions import CogsyncError, UsageError

__all__ = [
    "AWS_JSON",
    "GraphQLService",
    "InvalidRequestError",
    "RequestRefused",
    "SignedRequest",
    "Variables",
    "appsync_error_response",
    "aws_error_response",
    "decode_json",
    "graphql_error",
    "graphql_failure",
    "parse_graphql_request",
    "realtime_error_payload",
    "signed_request",
]

AWS_JSON = "application/x-amz-json-1.1"
"""The content type of AWS JSON 1.1 answers (Cognito Identity)."""

Variables: TypeAlias = dict[str, Any] | None
"""The ``variables`` of a GraphQL request."""


class RequestRefused(CogsyncError):
    """A request the server refuses; the client gets the error type and message.

    Attributes:
        error_type: AppSync's / AWS's error type (``UnauthorizedException``,
            ``BadRequestException``, ``InvalidParameterException``, ...).
        message: what was wrong and what to do.
        status: the HTTP status to answer with (also the real-time ``errorCode``); None
            when the protocol names none (HTTP answers then use 400).
    """

    def __init__(self, error_type: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status

    @property
    def http_status(self) -> int:
        """The HTTP status of the answer: `status`, or 400."""
        return 400 if self.status is None else self.status


class InvalidRequestError(RequestRefused, UsageError):
    """A request parameter is wrong: page token, page limit, sync count, request id or version."""

    def __init__(self, message: str) -> None:
        super().__init__("InvalidParameterException", message, 400)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The parts of a received request that a SigV4 signature covers.

    Attributes:
        method: HTTP method (``POST`` for every signed cogsync request).
        path: the request path as received, percent-encoded (``/graphql``).
        query: the raw query string without ``?`` ("" if none).
        headers: the received headers; lookups are case-insensitive.
        body: the exact body bytes.
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


def signed_request(request: web.Request, body: bytes) -> SignedRequest:
    """The parts of an aiohttp request that its SigV4 signature covers."""
    path, _, query = request.raw_path.partition("?")
    return SignedRequest(request.method, path, query, dict(request.headers), body)


class GraphQLService(Protocol):
    """What the HTTP and real-time front-ends need from the GraphQL executor.

    `cogsync.server.resolvers.SyncService` is the built-in one. Answers are AppSync-shaped
    ``{data, errors}``; ``subscribe`` refuses with `RequestRefused`.
    """

    async def execute(
        self, identity_id: str, query: str, variables: Variables, operation_name: str | None
    ) -> dict[str, Any]:
        """Run a query or mutation for ``identity_id``."""
        ...

    async def subscribe(
        self, identity_id: str, query: str, variables: Variables, operation_name: str | None
    ) -> AsyncIterator[dict[str, Any]]:
        """Open a subscription for ``identity_id``; its events are ``{data, errors}``."""
        ...


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def decode_json(
    data: str | bytes,
    *,
    error_type: str = "BadRequestException",
    what: str = "the request",
    status: int | None = 400,
) -> Any:
    """Decode client JSON; refuse text that is not JSON or nests deeper than Python decodes.

    Raises:
        RequestRefused: ``error_type`` with "<what> is not valid JSON ..." and ``status``.
    """
    try:
        decoded = json.loads(data)
        if _SURROGATE_ESCAPE.search(data if isinstance(data, bytes) else data.encode()):
            # A lone surrogate escape decodes to text no file or answer can hold.
            json.dumps(decoded, ensure_ascii=False).encode()
        return decoded
    except (ValueError, UnicodeError) as exc:
        raise RequestRefused(error_type, f"{what} is not valid JSON", status) from exc
    except RecursionError as exc:
        message = f"{what} is not valid JSON: it nests arrays or objects too deeply"
        raise RequestRefused(error_type, message, status) from exc


def parse_graphql_request(data: str | bytes) -> tuple[str, Variables, str | None]:
    """Split a GraphQL request JSON document into query, variables and operation name.

    Raises:
        RequestRefused: a ``BadRequestException`` saying what is wrong with the document.
    """
    request = decode_json(data)
    if not isinstance(request, dict) or not isinstance(request.get("query"), str):
        raise RequestRefused(
            "BadRequestException", "the request must be a JSON object with a string 'query'"
        )
    variables = request.get("variables")
    operation_name = request.get("operationName")
    if variables is not None and not isinstance(variables, dict):
        raise RequestRefused("BadRequestException", "'variables' must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestRefused("BadRequestException", "'operationName' must be a string")
    return request["query"], variables, operation_name


def appsync_error_response(refusal: RequestRefused) -> web.Response:
    """An AppSync HTTP error answer: ``{"errors": [{"errorType", "message"}]}``."""
    error = {"errorType": refusal.error_type, "message": refusal.message}
    return web.json_response({"errors": [error]}, status=refusal.http_status)


def aws_error_response(refusal: RequestRefused, *, content_type: str = AWS_JSON) -> web.Response:
    """An AWS JSON error answer: ``{"__type", "message"}``."""
    body = {"__type": refusal.error_type, "message": refusal.message}
    return web.json_response(body, status=refusal.http_status, content_type=content_type)


def realtime_error_payload(refusal: RequestRefused) -> dict[str, Any]:
    """The payload of a real-time ``error`` / ``connection_error`` message."""
    error: dict[str, Any] = {"errorType": refusal.error_type, "message": refusal.message}
    if refusal.status is not None:
        error["errorCode"] = refusal.status
    return {"errors": [error]}


def graphql_error(
    error_type: str,
    message: str,
    info: dict[str, Any] | None = None,
    path: list[str | int] | None = None,
    locations: list[dict[str, int]] | None = None,
) -> dict[str, Any]:
    """One entry of an AppSync GraphQL response's ``errors`` list."""
    return {
        "message": message,
        "errorType": error_type,
        "errorInfo": info,
        "path": path,
        "locations": locations,
    }


def graphql_failure(refusal: RequestRefused) -> dict[str, Any]:
    """A GraphQL response that failed as a whole: no data, one error."""
    return {"data": None, "errors": [graphql_error(refusal.error_type, refusal.message)]}
