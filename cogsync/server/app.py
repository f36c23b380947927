"""The aiohttp application of `cogsync serve`: routes, GraphQL over HTTP, error shaping.

Routes:

- ``POST /``: the Cognito Identity JSON API (`cogsync.server.identity`);
- ``POST /graphql``: AppSync-compatible GraphQL over HTTP; every request must carry a SigV4
  signature (service ``appsync``) made with credentials this server issued; the caller's
  identity comes from those credentials only;
- ``GET /graphql/realtime`` and ``GET /graphql`` with a WebSocket upgrade: the AppSync
  real-time protocol (`cogsync.server.realtime`).

Errors are AppSync-shaped (``{"errors": [{"errorType", "message"}]}``) on ``/graphql`` and
AWS-shaped (``{"__type", "message"}``) on ``/``; an unexpected exception becomes an
``InternalFailure`` answer, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from cogsync.server.credentials import IdentityDatabase
from cogsync.server.identity import IdentityApi, IdentitySettings, signed_request
from cogsync.server.realtime import BadGraphQLRequest, RealtimeEndpoint, parse_graphql_request
from cogsync.server.sigv4 import SignatureRejected

__all__ = [
    "MAX_BODY_BYTES",
    "REALTIME",
    "GraphQLService",
    "ServerSettings",
    "create_app",
]

MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest accepted HTTP request body; larger bodies get 413."""

REALTIME = web.AppKey("realtime", RealtimeEndpoint)
"""The application's `RealtimeEndpoint` (e.g. ``app[REALTIME].connections``)."""

_log = logging.getLogger(__name__)

_COMPRESS_ABOVE = 1024  # bytes; smaller answers are sent as they are


class GraphQLService(Protocol):
    """What the wire layer needs from the GraphQL executor (`cogsync.server.resolvers`)."""

    async def execute(
        self,
        identity_id: str,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
    ) -> dict[str, Any]:
        """Run a query or mutation for ``identity_id``; AppSync-shaped ``{data, errors}``."""
        ...

    async def subscribe(
        self,
        identity_id: str,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Open a subscription for ``identity_id``; its events are ``{data, errors}``."""
        ...


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Everything that shapes the server's behaviour (not where it listens).

    Attributes:
        identity: login and credential settings of the identity API.
        keepalive_interval: seconds between real-time ``ka`` messages.
        max_body_bytes: the largest HTTP body accepted.
        max_subscriptions: subscriptions one WebSocket connection may hold.
    """

    identity: IdentitySettings = field(default_factory=IdentitySettings)
    keepalive_interval: float = 60.0
    max_body_bytes: int = MAX_BODY_BYTES
    max_subscriptions: int = 100


def _appsync_error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response(
        {"errors": [{"errorType": error_type, "message": message}]}, status=status
    )


def _aws_error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response(
        {"__type": error_type, "message": message},
        status=status,
        content_type="application/x-amz-json-1.1",
    )


def _error_for(request: web.Request, status: int, error_type: str, message: str) -> web.Response:
    if request.path == "/":
        return _aws_error(status, error_type, message)
    return _appsync_error(status, error_type, message)


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
        return _error_for(request, exc.status, error_type, message)
    except asyncio.CancelledError:
        raise
    except Exception:
        _log.exception("unexpected error serving %s %s", request.method, request.path)
        return _error_for(
            request, 500, "InternalFailure", "the server failed; the error was logged"
        )


class _GraphQLEndpoint:
    def __init__(
        self, db: IdentityDatabase, service: GraphQLService, clock: Callable[[], float]
    ) -> None:
        self._db = db
        self._service = service
        self._clock = clock

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            record = await asyncio.to_thread(
                self._db.authenticate,
                signed_request(request, body),
                service="appsync",
                now=self._clock(),
            )
        except SignatureRejected as exc:
            return _appsync_error(exc.status, exc.error_type, exc.message)
        if record.identity_id is None:
            return _appsync_error(
                403,
                "UnauthorizedException",
                "the admin credentials have no identity: sign with credentials from "
                "GetCredentialsForIdentity",
            )
        try:
            query, variables, operation_name = parse_graphql_request(body)
        except BadGraphQLRequest as exc:
            return _appsync_error(400, "BadRequestException", str(exc))
        result = await self._service.execute(record.identity_id, query, variables, operation_name)
        response = web.json_response(result)
        if (response.content_length or 0) > _COMPRESS_ABOVE:
            response.enable_compression()  # gzip/deflate when the client accepts it, as AppSync
        return response


def create_app(
    db: IdentityDatabase,
    service: GraphQLService,
    *,
    refused: type[Exception],
    settings: ServerSettings | None = None,
    clock: Callable[[], float],
) -> web.Application:
    """Build the aiohttp application.

    Args:
        db: the identity database (identities, credentials, keys).
        service: executes GraphQL operations for an identity.
        refused: the exception ``service.subscribe`` raises to refuse a subscription.
        settings: server behaviour; defaults apply when None.
        clock: returns the current time in epoch seconds (injectable for tests).
    """
    settings = settings or ServerSettings()
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[_error_middleware])
    identity = IdentityApi(db, settings.identity, clock)
    graphql = _GraphQLEndpoint(db, service, clock)
    realtime = RealtimeEndpoint(
        db,
        service,
        clock,
        refused=refused,
        keepalive_interval=settings.keepalive_interval,
        max_subscriptions=settings.max_subscriptions,
    )
    app[REALTIME] = realtime
    app.on_shutdown.append(lambda _app: realtime.close_all())
    app.router.add_post("/", identity.handle)
    app.router.add_post("/graphql", graphql.handle)
    app.router.add_get("/graphql", realtime.handle)
    app.router.add_get("/graphql/realtime", realtime.handle)
    return app
