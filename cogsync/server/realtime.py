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

Trust and bounds (`cogsync.server.realtime_limits.RealtimeLimits`), as AppSync:

- a connection is closed ``max_lifetime`` after it opened (24 h; code 1000), or after
  ``init_timeout`` if it never sent ``connection_init`` (code 4408);
- a subscription ends with an ``error`` (``UnauthorizedException``, errorCode 401) once the
  credentials that signed its ``start`` expire; when an identity's credentials are revoked
  (a guest merged into a user) its subscriptions end so at once and its connections close
  (code 4401): the client reconnects with fresh credentials and catches up;
- one identity holds at most ``connections_per_identity`` connections (more get a
  ``connection_error`` ``LimitExceededError``) and ``subscriptions_per_identity``
  subscriptions (more get ``MaxSubscriptionsReachedError``).

Refusals are `RequestRefused`, rendered by `cogsync.server.wire.realtime_error_payload`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiohttp import WSMsgType, web

from cogsync.server.access import Authenticator
from cogsync.server.access_log import IDENTITY, OPERATION
from cogsync.server.credentials import IdentityDatabase
from cogsync.server.realtime_limits import RealtimeLimits
from cogsync.server.realtime_registry import IdentityRegistry
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
_CLOSE_LIFETIME = 1000  # normal closure: the connection reached its maximum lifetime
_CLOSE_REVOKED = 4401  # the identity's credentials were revoked
_CLOSE_INIT_TIMEOUT = 4408  # no connection_init in time (as graphql-ws)
_KEEPALIVE = {"type": "ka"}
_SWEEP_SLICE = 500  # connections the sweep visits before it lets other work run
_log = logging.getLogger(__name__)


class Caller(NamedTuple):
    """Who signed a real-time request: the identity and when its credentials expire."""

    identity_id: str
    expires_at: float | None


@dataclass(slots=True)
class _Subscription:
    """A started subscription: its pump (None while starting) and its credentials' expiry."""

    expires_at: float | None
    task: asyncio.Task[None] | None = None
    ending: bool = False  # its end (expired credentials) is under way

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def _expired() -> RequestRefused:
    return RequestRefused(
        "UnauthorizedException",
        "Token has expired: the credentials that started this subscription expired; "
        "reconnect with fresh credentials",
        401,
    )


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and task is not asyncio.current_task():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


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

    Call `start` once the event loop runs (it listens for revocations) and `close_all` on
    shutdown. `identities` tells what each identity holds.

    Args:
        db: the identity database that verifies signatures.
        service: executes subscriptions (`GraphQLService.subscribe`).
        clock: returns the current time in epoch seconds.
        keepalive_interval: seconds between ``ka`` messages.
        limits: lifetimes and per-identity caps.
        max_message_bytes: the largest accepted WebSocket message.
    """

    def __init__(
        self,
        db: IdentityDatabase,
        service: GraphQLService,
        clock: Callable[[], float],
        *,
        keepalive_interval: float = 60.0,
        limits: RealtimeLimits | None = None,
        max_message_bytes: int = 1_048_576,
    ) -> None:
        self._db = db
        self._authenticator = Authenticator(db, clock)
        self.service = service
        self.clock = clock
        self.keepalive_interval = keepalive_interval
        self.limits = limits or RealtimeLimits()
        self.max_message_bytes = max_message_bytes
        self.connections: set[_Connection] = set()
        self.identities: IdentityRegistry[_Connection] = IdentityRegistry(self.limits)
        self.running = False
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen for revoked credentials (from any thread) and start the timers' sweep."""
        self.identities.listen(self._db)
        self.running = True
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        """Every connection's deadlines and keep-alives, from one task for all of them.

        A task per connection woke up every second for each of thousands of connections;
        one pass over all of them costs a small fraction of that.
        """
        loop = asyncio.get_running_loop()
        interval = min(self.limits.check_interval, self.keepalive_interval)
        next_check = loop.time() + self.limits.check_interval
        while True:
            await asyncio.sleep(interval)
            now, ticked = self.clock(), loop.time()
            check = ticked >= next_check
            if check:
                next_check = ticked + self.limits.check_interval
            for n, connection in enumerate(list(self.connections), 1):
                try:
                    connection.tick(now, ticked, check=check)
                except Exception:  # one connection's failure never stops the others' timers
                    _log.exception("real-time sweep failed on a connection")
                if n % _SWEEP_SLICE == 0:
                    await asyncio.sleep(0)  # let events through between slices

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Upgrade ``request`` to a WebSocket and serve it until it closes."""
        ws = web.WebSocketResponse(
            protocols=(SUBPROTOCOL,), max_msg_size=self.max_message_bytes, autoping=True
        )
        if not ws.can_prepare(request).ok:
            upgrade = "this endpoint takes a WebSocket upgrade"
            return appsync_error_response(RequestRefused("BadRequestException", upgrade, 400))
        request[OPERATION] = "realtime"
        await ws.prepare(request)
        connection = _Connection(self, ws)
        self.connections.add(connection)
        try:
            await connection.serve(request)
        finally:
            if connection.identity_id is not None:
                request[IDENTITY] = connection.identity_id
            self.connections.discard(connection)
            if connection.identity_id is not None:
                self.identities.release(connection, connection.identity_id)
            await connection.shutdown()
        return ws

    @property
    def subscription_count(self) -> int:
        """Subscriptions open or starting on every connection."""
        return sum(c.subscription_count for c in self.connections)

    async def close_all(self) -> None:
        """Stop listening for revocations and close every open connection (shutdown)."""
        self.running = False
        self.identities.stop_listening()
        await _cancel(self._sweeper)
        self._sweeper = None
        for connection in list(self.connections):
            await connection.close()

    async def authenticate(self, auth: dict[str, str], path: str, body: bytes) -> Caller:
        """Who signed ``auth`` for ``POST path`` with ``body``."""
        signed = SignedRequest("POST", path, "", auth, body)
        record = await self._authenticator.verify(signed, service="appsync")
        if record.identity_id is None:
            raise RequestRefused(
                "UnauthorizedException",
                "the admin credentials have no identity: sign with identity credentials",
                401,
            )
        return Caller(record.identity_id, record.secret.expires_at)


class _Connection:
    """One WebSocket connection and its subscriptions."""

    def __init__(self, endpoint: RealtimeEndpoint, ws: web.WebSocketResponse) -> None:
        self._endpoint = endpoint
        self._ws = ws
        self._send_lock = asyncio.Lock()
        self._subscriptions: dict[str, _Subscription] = {}
        self._next_keepalive: float | None = None  # loop time; set by connection_init
        self._ending: asyncio.Task[None] | None = None  # revocation: ends, then closes
        self._closer: asyncio.Task[None] | None = None  # a close the server decided on
        self._opened = endpoint.clock()
        self._served = False  # the handshake passed: the sweep checks its deadlines
        self._earliest_expiry = math.inf  # no subscription expires before this
        self.identity_id: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # keep-alives and checks in flight

    @property
    def subscription_count(self) -> int:
        """Subscriptions open or starting on this connection."""
        return len(self._subscriptions)

    async def send(self, message: dict[str, Any]) -> None:
        if self._ws.closed:
            return
        async with self._send_lock:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._ws.send_str(json.dumps(message, separators=(",", ":")))

    async def serve(self, request: web.Request) -> None:
        try:
            identity_id = await self._handshake(request)
            self._endpoint.identities.admit(self, identity_id)
            self.identity_id = identity_id
        except RequestRefused as exc:
            await self.send({"type": "connection_error", "payload": realtime_error_payload(exc)})
            # Let the client's connection_init arrive before closing, so that it reads the
            # error instead of failing to send.
            with contextlib.suppress(asyncio.TimeoutError):
                await self._ws.receive(timeout=_HANDSHAKE_LINGER)
            await self._ws.close()
            return
        self._served = True
        async for message in self._ws:
            if message.type == WSMsgType.TEXT:
                await self._on_text(message.data)
            elif message.type == WSMsgType.BINARY:
                await self._error(
                    None, RequestRefused("BadRequestException", "send JSON text frames")
                )
            elif message.type == WSMsgType.ERROR:
                break

    async def close(self, code: int = 1001, reason: str = "server shutting down") -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._ws.close(code=code, message=reason.encode("utf-8"))

    async def shutdown(self) -> None:
        subscriptions = [s.task for s in self._subscriptions.values()]
        tasks = [*subscriptions, *self._tasks]
        for task in tasks:
            if task is not None:
                task.cancel()
        for task in tasks:
            await _cancel(task)
        self._subscriptions.clear()
        for closing in (self._ending, self._closer):  # let the close frame go out
            if closing is not None:
                with contextlib.suppress(Exception):
                    await closing

    def _close_soon(self, code: int, reason: str) -> None:
        """Close with ``code`` from a task of its own (a close must not be cancelled)."""
        if self._closer is None:
            self._closer = asyncio.create_task(self.close(code, reason))

    def revoke(self) -> None:
        """The identity's credentials were revoked: end its subscriptions, then close."""
        if self._ending is None and not self._ws.closed:
            self._ending = asyncio.create_task(self._end_revoked())

    async def _end_revoked(self) -> None:
        revoked = RequestRefused(
            "UnauthorizedException",
            "the credentials of this identity were revoked (e.g. it logged in to another "
            "identity): reconnect with fresh credentials",
            401,
        )
        for op_id in list(self._subscriptions):
            await self._end(op_id, revoked)
        self._close_soon(_CLOSE_REVOKED, "credentials revoked")

    def tick(self, now: float, loop_time: float, *, check: bool) -> None:
        """Send a due keep-alive; with ``check``, enforce the deadlines (from the sweep).

        Deadlines are checked every ``check_interval`` seconds: the maximum lifetime, the
        ``connection_init`` timeout, and each subscription's credentials.
        """
        if not self._served or self._ws.closed:
            return
        if self._next_keepalive is not None and loop_time >= self._next_keepalive:
            self._next_keepalive = loop_time + self._endpoint.keepalive_interval
            self._spawn(self.send(_KEEPALIVE))
        if not check:
            return
        limits = self._endpoint.limits
        if now >= self._opened + limits.max_lifetime:
            lifetime = f"{limits.max_lifetime:g} s"
            self._close_soon(_CLOSE_LIFETIME, f"maximum connection lifetime ({lifetime})")
        elif self._next_keepalive is None and now >= self._opened + limits.init_timeout:
            self._close_soon(_CLOSE_INIT_TIMEOUT, "connection_init timeout")
        elif self._earliest_expiry <= now:
            self._earliest_expiry = math.inf
            for op_id, subscription in self._subscriptions.items():
                if subscription.expired(now):
                    if not subscription.ending:
                        subscription.ending = True
                        self._spawn(self._end(op_id, _expired()))
                elif subscription.expires_at is not None:
                    self._earliest_expiry = min(self._earliest_expiry, subscription.expires_at)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _end(self, op_id: str, refusal: RequestRefused) -> None:
        """End a subscription with an ``error`` message."""
        subscription = self._subscriptions.pop(op_id, None)
        if subscription is not None:
            await _cancel(subscription.task)
            await self._error(op_id, refusal)

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
        caller = await self._endpoint.authenticate(auth, "/graphql/connect", b"{}")
        return caller.identity_id

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
            if self._next_keepalive is None:
                await self.send(_KEEPALIVE)
                loop_time = asyncio.get_running_loop().time()
                self._next_keepalive = loop_time + self._endpoint.keepalive_interval
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

    async def _start(self, op_id: str | None, payload: object) -> None:
        if not op_id or len(op_id) > _MAX_ID_LENGTH:
            raise RequestRefused(
                "BadRequestException", "a start message needs an 'id' of 1-128 chars"
            )
        if op_id in self._subscriptions:
            raise RequestRefused(
                "DuplicatedOperationError", f"Duplicate operation with id {op_id}", 400
            )
        assert self.identity_id is not None  # set by the handshake
        self._endpoint.identities.check_subscription(self, self.identity_id)
        # The slot is held while the start is verified, so concurrent starts cannot overrun.
        subscription = self._subscriptions[op_id] = _Subscription(None)
        try:
            iterator = await self._verified_subscribe(payload, subscription)
        except BaseException:
            if self._subscriptions.get(op_id) is subscription:
                del self._subscriptions[op_id]
            raise
        if self._subscriptions.get(op_id) is not subscription:  # ended while starting
            await _close_iterator(iterator)
            return
        await self.send({"type": "start_ack", "id": op_id})
        subscription.task = asyncio.create_task(self._pump(op_id, subscription, iterator))

    async def _verified_subscribe(
        self, payload: object, subscription: _Subscription
    ) -> AsyncIterator[dict[str, Any]]:
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
        caller = await self._endpoint.authenticate(
            _auth_object(authorization), "/graphql", data.encode("utf-8")
        )
        if caller.identity_id != self.identity_id:
            raise RequestRefused(
                "UnauthorizedException",
                "the start was signed by another identity than the connection",
                401,
            )
        subscription.expires_at = caller.expires_at
        if caller.expires_at is not None:
            self._earliest_expiry = min(self._earliest_expiry, caller.expires_at)
        try:
            request = parse_graphql_request(data)
        except RequestRefused as exc:
            raise RequestRefused(exc.error_type, f"payload.data: {exc.message}") from exc
        return await self._subscribe(caller.identity_id, request)

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

    async def _pump(
        self, op_id: str, subscription: _Subscription, iterator: AsyncIterator[dict[str, Any]]
    ) -> None:
        try:
            async for event in iterator:
                if subscription.expired(self._endpoint.clock()):  # never deliver past expiry
                    await self._end(op_id, _expired())
                    return
                await self.send({"type": "data", "id": op_id, "payload": event})
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("subscription %s failed", op_id)
            await self._error(op_id, RequestRefused("InternalFailure", "the subscription failed"))
        else:
            await self.send({"type": "complete", "id": op_id})
        finally:
            if self._subscriptions.get(op_id) is subscription:
                del self._subscriptions[op_id]
            await _close_iterator(iterator)

    async def _stop(self, op_id: str | None) -> None:
        if op_id is None:
            await self._error(
                None, RequestRefused("BadRequestException", "a stop message needs an 'id'")
            )
            return
        subscription = self._subscriptions.pop(op_id, None)
        if subscription is not None:
            await _cancel(subscription.task)
        await self.send({"type": "complete", "id": op_id})


async def _close_iterator(iterator: AsyncIterator[dict[str, Any]]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
