"""The access log of `cogsync serve`: one line per HTTP request and per WebSocket connection.

`access_middleware` times every request and, when it ends, logs to the ``cogsync.access``
logger the method, the path (never the query string: the real-time endpoint carries its
signed headers there), the status, the duration and the caller's identity id when known.
Handlers record what they learn on the request: ``request[IDENTITY]`` (the caller),
``request[OPERATION]`` and ``request[OUTCOME]`` (for metrics); bodies, credentials and
record values are never logged. A WebSocket connection's line is written when it closes,
with status 101. The same middleware hands each request to the server's `ServerMetrics`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from cogsync.server.metrics import ServerMetrics

__all__ = ["IDENTITY", "OPERATION", "OUTCOME", "access_middleware"]

IDENTITY = web.RequestKey("cogsync.identity_id", str)
"""Request key: the identity id of the caller (set once known)."""
OPERATION = web.RequestKey("cogsync.operation", str)
"""Request key: the operation (GraphQL field, Cognito Identity action, ``realtime``)."""
OUTCOME = web.RequestKey("cogsync.outcome", str)
"""Request key: ``ok`` or the error type of the answer."""

access_logger = logging.getLogger("cogsync.access")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def access_middleware(
    metrics: ServerMetrics | None,
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The aiohttp middleware that logs (and counts, with ``metrics``) every request."""

    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        started = time.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            duration = time.monotonic() - started
            identity = request.get(IDENTITY)
            if request.headers.get("Upgrade", "").lower() == "websocket" and status == 200:
                status = 101
            access_logger.info(
                "%s %s %d %.1fms identity=%s",
                request.method,
                request.path,
                status,
                duration * 1000,
                identity or "-",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "duration_ms": round(duration * 1000, 3),
                    "identity_id": identity,
                },
            )
            operation = request.get(OPERATION)
            if metrics is not None and operation is not None:
                outcome = request.get(OUTCOME) or ("ok" if status < 400 else f"http_{status}")
                metrics.observe_request(operation, outcome, duration)

    return middleware
