"""The aiohttp application of `cogsync serve`: routes, GraphQL over HTTP, error shaping.

Routes:

- ``POST /``: the Cognito Identity JSON API (`cogsync.server.identity`);
- ``POST /graphql``: AppSync-compatible GraphQL over HTTP; every request must carry a SigV4
  signature (service ``appsync``) made with credentials this server issued; the caller's
  identity comes from those credentials only;
- ``GET /graphql/realtime`` and ``GET /graphql`` with a WebSocket upgrade: the AppSync
  real-time protocol (`cogsync.server.realtime`).

Errors are AppSync-shaped (``{"errors": [{"errorType", "message"}]}``) on ``/graphql`` and
AWS-shaped (``{"__type", "message"}``) on ``/`` (rendered by `cogsync.server.wire`); an
unexpected exception becomes an ``InternalFailure`` answer, never a traceback.
`GraphQLService` (defined in `cogsync.server.wire`) is re-exported here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

from cogsync.server.access import Authenticator
from cogsync.server.access_log import IDENTITY, OPERATION, OUTCOME, access_middleware
from cogsync.server.bounds import DEFAULT_SERVER_LIMITS, ServerLimits
from cogsync.server.connections import CONNECTIONS, ConnectionGuard, read_body
from cogsync.server.credentials import IdentityDatabase
from cogsync.server.identity import IdentityApi, IdentitySettings
from cogsync.server.log_format import quiet_client_faults
from cogsync.server.metrics import ServerMetrics
from cogsync.server.querylimits import check_answer_size
from cogsync.server.realtime import RealtimeEndpoint
from cogsync.server.realtime_limits import RealtimeLimits
from cogsync.server.wire import (
    GraphQLService,
    RequestRefused,
    appsync_error_response,
    aws_error_response,
    graphql_failure,
    parse_graphql_request,
)

__all__ = [
    "COMPRESSION_MODES",
    "MAX_BODY_BYTES",
    "REALTIME",
    "Compression",
    "GraphQLService",
    "ServerSettings",
    "compresses",
    "create_app",
]

MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest accepted HTTP request body; larger bodies get 413."""

REALTIME = web.AppKey("realtime", RealtimeEndpoint)
"""The application's `RealtimeEndpoint` (e.g. ``app[REALTIME].connections``)."""

_log = logging.getLogger(__name__)

_COMPRESS_ABOVE = 1024  # bytes; smaller answers are sent as they are

Compression = Literal["auto", "always", "never"]
"""When GraphQL answers are compressed (``cogsync serve --compression``)."""
COMPRESSION_MODES: tuple[Compression, ...] = ("auto", "always", "never")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Everything that shapes the server's behaviour (not where it listens).

    Attributes:
        identity: login and credential settings of the identity API.
        keepalive_interval: seconds between real-time ``ka`` messages.
        max_body_bytes: the largest HTTP body accepted.
        limits: bounds on connections, request reads, documents and answers.
        realtime: lifetimes and per-identity caps of real-time connections.
        compression: when GraphQL answers above 1 KB are compressed (gzip or deflate, if
            the client accepts one): ``always``; ``never``; ``auto``, except to loopback
            peers (a local link is faster than compressing).
    """

    identity: IdentitySettings = field(default_factory=IdentitySettings)
    keepalive_interval: float = 60.0
    max_body_bytes: int = MAX_BODY_BYTES
    limits: ServerLimits = DEFAULT_SERVER_LIMITS
    realtime: RealtimeLimits = field(default_factory=RealtimeLimits)
    compression: Compression = "auto"


def _error_for(request: web.Request, refusal: RequestRefused) -> web.Response:
    if request.path == "/":
        return aws_error_response(refusal)
    return appsync_error_response(refusal)


_HTTP_ERROR_TYPES = {
    404: "NotFoundException",
    405: "MethodNotAllowedException",
    413: "PayloadTooLargeException",
}


@web.middleware
async def _error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error_type = _HTTP_ERROR_TYPES.get(exc.status, "BadRequestException")
        message = exc.reason
        if exc.status == 413:
            message = "the request body is too large; split the batch into smaller pushes"
        return _error_for(request, RequestRefused(error_type, message, exc.status))
    except asyncio.CancelledError:
        raise
    except Exception:
        _log.exception("unexpected error serving %s %s", request.method, request.path)
        failed = "the server failed; the error was logged"
        return _error_for(request, RequestRefused("InternalFailure", failed, 500))


_FIELD = re.compile(r"(?:mutation|query)?[^{]*\{\s*(?:\w+\s*:\s*)?(\w+)")
_OPERATIONS = frozenset(
    {"serverInfo", "listDatasets", "listRecords", "pushRecords", "deleteDataset"}
)


def _operation(query: str) -> str:
    """The first top-level field of ``query`` (a bounded label for metrics and logs)."""
    match = _FIELD.match(query)
    name = match.group(1) if match else ""
    return name if name in _OPERATIONS else "other"


def _pushed_records(variables: object) -> int:
    """How many records a pushRecords request's input variable carries."""
    values = variables.values() if isinstance(variables, dict) else ()
    for value in values:
        if isinstance(value, dict) and isinstance(value.get("records"), list):
            return len(value["records"])
    return 0


def _loopback(peer: str | None) -> bool:
    try:
        address = ipaddress.ip_address(peer or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def compresses(compression: Compression, size: int, peer: str | None) -> bool:
    """Whether an answer of ``size`` bytes to ``peer`` is offered compressed."""
    if compression == "never" or size <= _COMPRESS_ABOVE:
        return False
    return compression == "always" or not _loopback(peer)


def _encoded(answer: dict[str, Any]) -> bytes | None:
    """``answer`` as compact UTF-8 JSON; None for what orjson refuses (lone surrogates,
    integers past 64 bits), which `json` then encodes as ASCII."""
    try:
        return orjson.dumps(answer)
    except TypeError:  # orjson.JSONEncodeError
        return None


class _GraphQLEndpoint:
    def __init__(
        self,
        authenticator: Authenticator,
        service: GraphQLService,
        settings: ServerSettings,
        metrics: ServerMetrics | None,
    ) -> None:
        self._authenticator, self._service = authenticator, service
        self._limits, self._compression = settings.limits, settings.compression
        self._metrics = metrics

    async def handle(self, request: web.Request) -> web.Response:
        request[OPERATION] = "graphql"
        try:
            body = await read_body(request)
            record = await self._authenticator.verify_request(request, body, service="appsync")
            if record.identity_id is None:
                raise RequestRefused(
                    "UnauthorizedException",
                    "the admin credentials have no identity: sign with credentials from "
                    "GetCredentialsForIdentity",
                    403,
                )
            request[IDENTITY] = record.identity_id
            query, variables, operation_name = parse_graphql_request(body)
        except RequestRefused as exc:
            request[OUTCOME] = exc.error_type
            return appsync_error_response(exc)
        request[OPERATION] = _operation(query)
        result = await self._service.execute(record.identity_id, query, variables, operation_name)
        errors = result.get("errors")
        request[OUTCOME] = str(errors[0].get("errorType", "error")) if errors else "ok"
        if not errors and request[OPERATION] == "pushRecords" and self._metrics is not None:
            self._metrics.push_accepted(_pushed_records(variables))
        answer = _encoded(result)
        if answer is None:
            loop = asyncio.get_running_loop()
            answer = (await loop.run_in_executor(None, json.dumps, result)).encode("ascii")
        try:
            check_answer_size(len(answer), self._limits.max_response_bytes)
        except RequestRefused as exc:
            return web.json_response(graphql_failure(exc))
        response = web.Response(body=answer, content_type="application/json", charset="utf-8")
        if compresses(self._compression, len(answer), request.remote):
            response.enable_compression()  # gzip/deflate when the client accepts it, as AppSync
        return response


async def _without_server_header(_request: web.Request, response: web.StreamResponse) -> None:
    """aiohttp names itself and its version in ``Server``: not worth the bytes, nor telling."""
    response.headers.popall("Server", None)


def create_app(
    db: IdentityDatabase,
    service: GraphQLService,
    *,
    settings: ServerSettings | None = None,
    clock: Callable[[], float],
    metrics: ServerMetrics | None = None,
) -> web.Application:
    """Build the aiohttp application.

    Args:
        db: the identity database (identities, credentials, keys).
        service: executes GraphQL operations for an identity.
        settings: server behaviour; defaults apply when None.
        clock: returns the current time in epoch seconds (injectable for tests).
        metrics: where to count requests (``GET /metrics`` is added by the caller).
    """
    settings = settings or ServerSettings()
    quiet_client_faults()
    guard = ConnectionGuard(settings.limits)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[access_middleware(metrics), guard.middleware, _error_middleware],
    )
    app[CONNECTIONS] = guard
    identity = IdentityApi(db, settings.identity, clock)
    graphql = _GraphQLEndpoint(Authenticator(db, clock), service, settings, metrics)
    realtime = RealtimeEndpoint(
        db,
        service,
        clock,
        keepalive_interval=settings.keepalive_interval,
        limits=settings.realtime,
    )
    app[REALTIME] = realtime
    app.on_response_prepare.append(_without_server_header)
    app.on_startup.append(lambda _app: realtime.start())
    app.on_shutdown.append(lambda _app: realtime.close_all())
    app.router.add_post("/", identity.handle)
    app.router.add_post("/graphql", graphql.handle)
    app.router.add_get("/graphql", realtime.handle)
    app.router.add_get("/graphql/realtime", realtime.handle)
    return app
