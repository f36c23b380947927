"""Connection-level bounds of `cogsync serve`: the connection cap and the read timeouts.

`ConnectionGuard` wraps the aiohttp protocol factory the listening socket uses:

* past ``max_connections`` open connections (HTTP and WebSocket together) a new connection
  is answered ``503`` with an AppSync-shaped error and closed, never served;
* a connection must deliver a complete request head within ``header_timeout`` of opening
  (or of the first byte of a later keep-alive request); otherwise it is answered ``408``
  and closed. The guard's middleware marks when a request is being handled, so a long
  request or an open WebSocket is never timed out by it.

`read_body` reads a request body within ``body_timeout`` (a ``408`` refusal past it).
Idle keep-alive connections are closed by aiohttp after ``idle_timeout``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from cogsync.server.bounds import DEFAULT_SERVER_LIMITS, ServerLimits
from cogsync.server.wire import RequestRefused

__all__ = ["CONNECTIONS", "ConnectionGuard", "body_deadline", "read_body"]

_T = TypeVar("_T")

_HEAD_END = b"\r\n\r\n"
_REFUSED_LINGER = 1.0  # seconds a refused connection stays open for the client to read


def _raw_answer(status: int, reason: str, error_type: str, message: str) -> bytes:
    body = json.dumps({"errors": [{"errorType": error_type, "message": message}]}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _Refused(asyncio.Protocol):
    """A connection past the cap: answer 503, stop sending, close soon."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self._answer)
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(_REFUSED_LINGER, transport.abort)

    def data_received(self, data: bytes) -> None:
        pass  # whatever the client sends is dropped

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()


class _Guarded(asyncio.Protocol):
    """One served connection: delegates to aiohttp and times the request heads."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard, self._inner = guard, inner
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self.busy = False  # a request is being handled (head complete)
        self.reading = False  # its handler waits for the body (see `body_deadline`)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._guard.opened(transport, self)
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            if self._timer is None:
                self._arm()  # the first byte of a keep-alive request
            if _HEAD_END in self._tail + data:
                self._disarm()
                self.busy = True
            else:
                self._tail = (self._tail + data)[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._transport is not None:
            self._guard.closed(self._transport)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def abort(self) -> None:
        """Cut the connection now."""
        if self._transport is not None:
            self._transport.abort()

    def request_started(self) -> None:
        self._disarm()
        self.busy = True

    def request_finished(self) -> None:
        self.busy, self._tail = False, b""

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._guard.limits.header_timeout, self._head_timeout)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timeout(self) -> None:
        self._timer = None
        if self._transport is None or self._transport.is_closing():
            return
        seconds = self._guard.limits.header_timeout
        message = f"the request head did not arrive within {seconds:g} seconds"
        self._transport.write(_raw_answer(408, "Request Timeout", "RequestTimeout", message))
        self._transport.close()


class ConnectionGuard:
    """Counts open connections, refuses those past the cap and times request heads.

    Args:
        limits: ``max_connections`` and ``header_timeout`` apply here.
    """

    def __init__(self, limits: ServerLimits = DEFAULT_SERVER_LIMITS) -> None:
        self.limits = limits
        self._open: dict[asyncio.BaseTransport, _Guarded] = {}
        self.refused = 0

    @property
    def open_connections(self) -> int:
        """Connections being served now."""
        return len(self._open)

    def protocol_factory(
        self, inner: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]:
        """The factory to listen with: ``inner`` (aiohttp's) behind the cap and timeouts."""

        def factory() -> asyncio.Protocol:
            if len(self._open) >= self.limits.max_connections:
                self.refused += 1
                message = (
                    f"the server already serves {self.limits.max_connections} connections: "
                    "retry later"
                )
                answer = _raw_answer(503, "Service Unavailable", "ServiceUnavailable", message)
                return _Refused(answer)
            return _Guarded(self, inner())

        return factory

    def opened(self, transport: asyncio.BaseTransport, protocol: _Guarded) -> None:
        """Count a served connection (called by its protocol)."""
        self._open[transport] = protocol

    def closed(self, transport: asyncio.BaseTransport) -> None:
        """Forget a closed connection (called by its protocol)."""
        self._open.pop(transport, None)

    def cut_waiting(self) -> int:
        """Shutting down: abort every connection that only waits on its client (idle, a
        request head or body still arriving); requests being executed go on. Returns how
        many were cut."""
        waiting = [p for p in self._open.values() if not p.busy or p.reading]
        for protocol in waiting:
            protocol.abort()
        return len(waiting)

    def abort_all(self) -> None:
        """Abort every open connection (the end of a shutdown's grace period)."""
        for protocol in list(self._open.values()):
            protocol.abort()

    def _set_reading(self, request: web.Request, reading: bool) -> None:
        protocol = self._open.get(request.transport) if request.transport else None
        if protocol is not None:
            protocol.reading = reading

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Mark the connection busy while a request is handled (no head timeout then)."""
        protocol = self._open.get(request.transport) if request.transport else None
        if protocol is not None:
            protocol.request_started()
        try:
            response = await handler(request)
            if response.status == 408 and request.transport is not None:
                # answer, then close: the rest of a late body is not waited for
                response.force_close()
                await response.prepare(request)
                await response.write_eof()
                request.transport.close()
            return response
        finally:
            if protocol is not None:
                protocol.request_finished()


CONNECTIONS = web.AppKey("connections", ConnectionGuard)
"""The application's `ConnectionGuard` (its limits also time request bodies)."""


async def body_deadline(request: web.Request, reading: Awaitable[_T]) -> _T:
    """Await ``reading`` (of ``request``'s body) within the app's ``body_timeout``.

    Raises:
        RequestRefused: ``RequestTimeout`` (408) when the body is late.
    """
    guard = request.app.get(CONNECTIONS)
    timeout = (guard.limits if guard is not None else DEFAULT_SERVER_LIMITS).body_timeout
    if guard is not None:
        guard._set_reading(request, True)  # a shutdown need not wait for this client
    try:
        return await asyncio.wait_for(reading, timeout)
    except TimeoutError as exc:
        message = f"the request body did not arrive within {timeout:g} seconds"
        raise RequestRefused("RequestTimeout", message, 408) from exc
    except ConnectionError as exc:  # the client went away (or a shutdown cut it)
        message = "the connection was lost before the request body arrived"
        raise RequestRefused("BadRequestException", message, 400) from exc
    except (web.RequestPayloadError, HttpProcessingError) as exc:  # bad encoding, length
        detail = " ".join(str(exc).split())[:200]
        message = f"the request body could not be read: {detail}"
        raise RequestRefused("BadRequestException", message, 400) from exc
    finally:
        if guard is not None:
            guard._set_reading(request, False)


async def read_body(request: web.Request) -> bytes:
    """The request body (at most ``client_max_size``), read within ``body_timeout``."""
    return await body_deadline(request, request.read())
