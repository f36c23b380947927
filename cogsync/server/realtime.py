"""The AppSync real-time WebSocket endpoint of `cogsync serve` (``GET /graphql/realtime``).

Protocol (subprotocol ``graphql-ws``, as AppSync speaks it):

- the handshake carries an IAM auth object, either base64 JSON in the ``header`` query
  parameter (with ``payload=e30=``) or in a ``header-<base64url>`` subprotocol; its
  signature covers ``POST https://<host>/graphql/connect`` with body ``{}``; failures get a
  ``connection_error`` and the socket is closed;
- ``connection_init`` -> ``connection_ack {connectionTimeoutMs}``, then ``ka`` every
  ``keepalive_interval`` seconds;
- ``start {id, payload: {data, extensions: {authorization}}}``: the authorization signs
  ``POST https://<host>/graphql`` with body = the ``data`` string and must belong to the
  connection's identity -> ``start_ack``, then ``data`` messages; ``stop`` -> ``complete``;
- anything malformed gets an ``error`` message; the connection (and the server) lives on.

Refusals are `RequestRefused`, rendered by `cogsync.server.wire.realtime_error_payload`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import WSMsgType, web

from cogsync.server.access import Authenticator
from cogsync.server.credentials import IdentityDatabase
from cogsync.server.wire import (
    GraphQLService,
    RequestRefused,
    SignedRequest,
    Variables,
    appsync_error_response,
    decode_json,
    parse_graphql_request,
    realtime_error_payload,
)

__all__ = ["CONNECTION_TIMEOUT_MS", "SUBPROTOCOL", "RealtimeEndpoint"]

SUBPROTOCOL = "graphql-ws"
CONNECTION_TIMEOUT_MS = 300_000
_MAX_ID_LENGTH = 128
_HANDSHAKE_LINGER = 2.0  # seconds a refused connection stays open for the client's first frame
_log = logging.getLogger(__name__)


def _decode_auth(encoded: str) -> dict[str, str]:
    """Decode a base64 / base64url JSON auth object (padding optional)."""
    text = encoded.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestRefused(
            "UnauthorizedException", "the auth header is not base64 JSON", 400
        ) from exc
    data = decode_json(raw, error_type="UnauthorizedException", what="the auth header")
    return _auth_object(data)


def _auth_object(data: object) -> dict[str, str]:
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise RequestRefused(
            "UnauthorizedException", "the authorization must be an object of strings", 400
        )
    return dict(data)


class RealtimeEndpoint:
    """Serves AppSync real-time WebSocket connections.

    Args:
        db: the identity database that verifies signatures.
        service: executes subscriptions (`GraphQLService.subscribe`).
        clock: returns the current time in epoch seconds.
        keepalive_interval: seconds between ``ka`` messages.
        max_subscriptions: subscriptions one connection may hold.
        max_message_bytes: the largest accepted WebSocket message.
    """

    def __init__(
        self,
        db: IdentityDatabase,
        service: GraphQLService,
        clock: Callable[[], float],
        *,
        keepalive_interval: float = 60.0,
        max_subscriptions: int = 100,
        max_message_bytes: int = 1_048_576,
    ) -> None:
        self._authenticator = Authenticator(db, clock)
        self.service = service
        self.keepalive_interval = keepalive_interval
        self.max_subscriptions = max_subscriptions
        self.max_message_bytes = max_message_bytes
        self.connections: set[_Connection] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Upgrade ``request`` to a WebSocket and serve it until it closes."""
        ws = web.WebSocketResponse(
            protocols=(SUBPROTOCOL,), max_msg_size=self.max_message_bytes, autoping=True
        )
        if not ws.can_prepare(request).ok:
            upgrade = "this endpoint takes a WebSocket upgrade"
            return appsync_error_response(RequestRefused("BadRequestException", upgrade, 400))
        await ws.prepare(request)
        connection = _Connection(self, ws)
        self.connections.add(connection)
        try:
            await connection.serve(request)
        finally:
            self.connections.discard(connection)
            await connection.shutdown()
        return ws

    async def close_all(self) -> None:
        """Close every open connection (server shutdown)."""
        for connection in list(self.connections):
            await connection.close()

    async def authenticate(self, auth: dict[str, str], path: str, body: bytes) -> str:
        """The identity whose credentials signed ``auth`` for ``POST path`` with ``body``."""
        signed = SignedRequest("POST", path, "", auth, body)
        record = await self._authenticator.verify(signed, service="appsync")
        if record.identity_id is None:
            raise RequestRefused(
                "UnauthorizedException",
                "the admin credentials have no identity: sign with identity credentials",
                401,
            )
        return record.identity_id


class _Connection:
    """One WebSocket connection and its subscriptions."""

    def __init__(self, endpoint: RealtimeEndpoint, ws: web.WebSocketResponse) -> None:
        self._endpoint = endpoint
        self._ws = ws
        self._send_lock = asyncio.Lock()
        self._subscriptions: dict[str, asyncio.Task[None]] = {}
        self._keepalive: asyncio.Task[None] | None = None
        self.identity_id: str | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if self._ws.closed:
            return
        async with self._send_lock:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._ws.send_str(json.dumps(message, separators=(",", ":")))

    async def serve(self, request: web.Request) -> None:
        try:
            self.identity_id = await self._handshake(request)
        except RequestRefused as exc:
            await self.send({"type": "connection_error", "payload": realtime_error_payload(exc)})
            # Let the client's connection_init arrive before closing, so that it reads the
            # error instead of failing to send.
            with contextlib.suppress(asyncio.TimeoutError):
                await self._ws.receive(timeout=_HANDSHAKE_LINGER)
            await self._ws.close()
            return
        async for message in self._ws:
            if message.type == WSMsgType.TEXT:
                await self._on_text(message.data)
            elif message.type == WSMsgType.BINARY:
                await self._error(
                    None, RequestRefused("BadRequestException", "send JSON text frames")
                )
            elif message.type == WSMsgType.ERROR:
                break

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._ws.close(code=1001, message=b"server shutting down")

    async def shutdown(self) -> None:
        tasks = [*self._subscriptions.values()]
        if self._keepalive is not None:
            tasks.append(self._keepalive)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._subscriptions.clear()

    async def _handshake(self, request: web.Request) -> str:
        if self._ws.ws_protocol != SUBPROTOCOL:
            raise RequestRefused(
                "SubProtocolNotSupportedError",
                f"connect with the WebSocket subprotocol {SUBPROTOCOL!r}",
                400,
            )
        encoded = request.query.get("header")
        if encoded is None:
            offered = request.headers.get("Sec-WebSocket-Protocol", "")
            encoded = next(
                (
                    p.strip().removeprefix("header-")
                    for p in offered.split(",")
                    if p.strip().startswith("header-")
                ),
                None,
            )
        if not encoded:
            raise RequestRefused(
                "UnauthorizedException",
                "no authorization: pass the signed auth object in the 'header' query "
                "parameter or a 'header-<base64url>' subprotocol",
                401,
            )
        auth = _decode_auth(encoded)
        return await self._endpoint.authenticate(auth, "/graphql/connect", b"{}")

    async def _on_text(self, text: str) -> None:
        try:
            message = decode_json(text, what="the message")
        except RequestRefused:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self._error(
                None,
                RequestRefused(
                    "BadRequestException", "each message must be a JSON object with a string 'type'"
                ),
            )
            return
        kind = message["type"]
        raw_id = message.get("id")
        op_id = raw_id if isinstance(raw_id, str) else None
        if kind == "connection_init":
            await self.send(
                {
                    "type": "connection_ack",
                    "payload": {"connectionTimeoutMs": CONNECTION_TIMEOUT_MS},
                }
            )
            if self._keepalive is None:
                await self.send({"type": "ka"})
                self._keepalive = asyncio.create_task(self._keep_alive())
        elif kind == "start":
            try:
                await self._start(op_id, message.get("payload"))
            except RequestRefused as exc:
                await self._error(op_id, exc)
        elif kind == "stop":
            await self._stop(op_id)
        elif kind == "connection_terminate":
            await self._ws.close()
        else:
            await self._error(
                op_id, RequestRefused("UnsupportedOperation", f"unknown message type {kind[:40]!r}")
            )

    async def _error(self, op_id: str | None, exc: RequestRefused) -> None:
        message: dict[str, Any] = {"type": "error", "payload": realtime_error_payload(exc)}
        if op_id is not None:
            message["id"] = op_id
        await self.send(message)

    async def _keep_alive(self) -> None:
        while not self._ws.closed:
            await asyncio.sleep(self._endpoint.keepalive_interval)
            await self.send({"type": "ka"})

    async def _start(self, op_id: str | None, payload: object) -> None:
        if not op_id or len(op_id) > _MAX_ID_LENGTH:
            raise RequestRefused(
                "BadRequestException", "a start message needs an 'id' of 1-128 chars"
            )
        if op_id in self._subscriptions:
            raise RequestRefused(
                "DuplicatedOperationError", f"Duplicate operation with id {op_id}", 400
            )
        if len(self._subscriptions) >= self._endpoint.max_subscriptions:
            raise RequestRefused(
                "MaxSubscriptionsReachedError",
                f"a connection holds at most {self._endpoint.max_subscriptions} subscriptions",
            )
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), str):
            raise RequestRefused("BadRequestException", "start.payload.data must be a JSON string")
        extensions = payload.get("extensions")
        authorization = extensions.get("authorization") if isinstance(extensions, dict) else None
        if authorization is None:
            raise RequestRefused(
                "UnauthorizedException",
                "start.payload.extensions.authorization is missing: sign each start",
                401,
            )
        data: str = payload["data"]
        identity_id = await self._endpoint.authenticate(
            _auth_object(authorization), "/graphql", data.encode("utf-8")
        )
        if identity_id != self.identity_id:
            raise RequestRefused(
                "UnauthorizedException",
                "the start was signed by another identity than the connection",
                401,
            )
        try:
            request = parse_graphql_request(data)
        except RequestRefused as exc:
            raise RequestRefused(exc.error_type, f"payload.data: {exc.message}") from exc
        iterator = await self._subscribe(identity_id, request)
        await self.send({"type": "start_ack", "id": op_id})
        self._subscriptions[op_id] = asyncio.create_task(self._pump(op_id, iterator))

    async def _subscribe(
        self, identity_id: str, request: tuple[str, Variables, str | None]
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            return await self._endpoint.service.subscribe(identity_id, *request)
        except RequestRefused:
            raise
        except Exception as exc:
            _log.exception("subscription failed to start")
            raise RequestRefused(
                "InternalFailure", "the subscription could not be started"
            ) from exc

    async def _pump(self, op_id: str, iterator: AsyncIterator[dict[str, Any]]) -> None:
        try:
            async for event in iterator:
                await self.send({"type": "data", "id": op_id, "payload": event})
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("subscription %s failed", op_id)
            await self._error(op_id, RequestRefused("InternalFailure", "the subscription failed"))
        else:
            await self.send({"type": "complete", "id": op_id})
        finally:
            self._subscriptions.pop(op_id, None)
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _stop(self, op_id: str | None) -> None:
        if op_id is None:
            await self._error(
                None, RequestRefused("BadRequestException", "a stop message needs an 'id'")
            )
            return
        task = self._subscriptions.pop(op_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.send({"type": "complete", "id": op_id})
