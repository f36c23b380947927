"""`DatasetChangeSubscription`: a self-healing ``onDatasetChanged`` subscription.

It keeps one AppSync real-time WebSocket open (AppSync or ``cogsync serve``), signed with
the identity's temporary credentials, and reports each change notification. Design rules:

- A fresh gql transport per connection: gql signs the connect URL once, when the
  transport is built, so a reconnect with the same transport would reuse an old date and
  perhaps expired credentials.
- ``on_connect`` runs after every successful subscribe (``start_ack``), so the client can
  catch up on anything missed while disconnected; notifications are only pokes.
- Drops and failed attempts are retried forever with capped, jittered exponential backoff
  (reset after each successful subscribe); ``on_error`` sees each failure as a cogsync error.
- gql ignores the server's ``connectionTimeoutMs``; the keep-alive timeout is set here (the
  smaller of the configured value and the server's).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from gql import Client, GraphQLRequest
from gql.transport.appsync_websockets import AppSyncWebsocketsTransport
from gql.transport.exceptions import TransportError, TransportQueryError
from websockets.exceptions import InvalidStatus

from cogsync._backoff import backoff_delays
from cogsync._callbacks import maybe_await
from cogsync._signing import iam_auth
from cogsync._tasks import cancel_and_wait
from cogsync.auth.cognito import CognitoIdentity
from cogsync.config import Config
from cogsync.exceptions import CogsyncError, NotAuthorizedError, OfflineError, ServerError
from cogsync.remote import operations
from cogsync.remote.graphql import translate_graphql_error, translate_transport_error

__all__ = ["DatasetChangeSubscription"]

log = logging.getLogger(__name__)

OnChange = Callable[[str, int, bool], Awaitable[None] | None]
OnConnect = Callable[[], Awaitable[None] | None]
OnError = Callable[[CogsyncError], Awaitable[None] | None]


class DatasetChangeSubscription:
    """Notifications of changes to an identity's datasets, made on any device.

    Args:
        config: ``realtime_url`` to connect to, ``graphql_url`` whose host is signed.
        identity: supplies the identity id and temporary credentials.
        identity_id: the identity to watch; None asks ``identity``.
        on_change: called as ``on_change(dataset_name, sync_count, deleted)`` per change.
        on_connect: called after every (re)connect, once the subscription is live.
        on_error: called with each connection failure (already a cogsync error).
        keep_alive_timeout: seconds without a keep-alive before the socket counts as dead.
        connect_timeout: seconds allowed to open the socket and have the subscription
            acknowledged.
        delays: makes a fresh iterator of reconnect delays (see `backoff_delays`).

    Callbacks may be plain functions or coroutine functions; they run in order on the
    subscription's task, and an exception in one is logged and otherwise ignored.
    """

    def __init__(
        self,
        config: Config,
        identity: CognitoIdentity,
        identity_id: str | None = None,
        *,
        on_change: OnChange,
        on_connect: OnConnect | None = None,
        on_error: OnError | None = None,
        keep_alive_timeout: float = 300.0,
        connect_timeout: float = 10.0,
        delays: Callable[[], Iterator[float]] = backoff_delays,
    ) -> None:
        self._config = config
        self._identity = identity
        self._identity_id = identity_id
        self._on_change = on_change
        self._on_connect = on_connect
        self._on_error = on_error
        self._keep_alive_timeout = keep_alive_timeout
        self._connect_timeout = connect_timeout
        self._delays = delays
        self._task: asyncio.Task[None] | None = None
        self._live = asyncio.Event()
        self.connections = 0
        """How many times the subscription went live (1 after the first connect)."""

    @property
    def connected(self) -> bool:
        """True while the subscription is live."""
        return self._live.is_set()

    def start(self) -> None:
        """Start connecting in the background (call from a running event loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="cogsync-dataset-changes"
            )

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the subscription is live.

        Raises:
            TimeoutError: it did not go live within ``timeout`` seconds.
        """
        await asyncio.wait_for(self._live.wait(), timeout)

    async def stop(self) -> None:
        """Close the subscription and its socket; returns once nothing is left running."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        self._live.clear()

    async def _run(self) -> None:
        delays = self._delays()
        while True:
            before = self.connections
            try:
                await self._connect_once()
                error: CogsyncError = OfflineError(
                    "the server ended the change subscription; reconnecting"
                )
            except CogsyncError as exc:
                error = exc
            except Exception as exc:  # a bug must not end push sync for good
                log.exception("dataset change subscription failed unexpectedly")
                error = ServerError(f"the change subscription failed: {exc!r}; reconnecting")
            finally:
                self._live.clear()
            if self.connections != before:
                delays = self._delays()
            if isinstance(error, NotAuthorizedError):
                self._identity.invalidate_credentials()
            log.info("dataset change subscription down: %s", error)
            await self._call(self._on_error, error)
            await asyncio.sleep(next(delays))

    async def _connect_once(self) -> None:
        identity_id = self._identity_id or await self._identity.get_identity_id()
        credentials = await self._identity.credentials()
        auth = iam_auth(urlsplit(self._config.graphql_url).netloc, self._config.region, credentials)
        transport = _RealtimeTransport(
            url=self._config.realtime_url,
            auth=auth,
            connect_timeout=self._connect_timeout,
            ack_timeout=self._connect_timeout,
            close_timeout=2,
            keep_alive_timeout=self._keep_alive_timeout,
        )
        client = Client(transport=transport, fetch_schema_from_transport=False)
        request = GraphQLRequest(
            operations.ON_DATASET_CHANGED, variable_values={"identityId": identity_id}
        )
        try:
            async with client as session:
                await self._listen(session, transport, request)
        except TransportQueryError as exc:
            errors: list[Any] = list(exc.errors or [{}])
            raise translate_graphql_error(_first_error(errors[0])) from exc
        except TransportError as exc:
            raise _connection_error(exc, transport) from exc
        except TimeoutError as exc:
            raise OfflineError(
                f"the real-time endpoint {self._config.realtime_url} did not answer within "
                f"{self._connect_timeout:g} s; local data is intact"
            ) from exc
        finally:
            await transport.wait_closed()

    async def _listen(
        self, session: Any, transport: _RealtimeTransport, request: GraphQLRequest
    ) -> None:
        consumer = asyncio.create_task(self._consume(session, request))
        acked = asyncio.create_task(transport.subscribed.wait())
        try:
            done, _ = await asyncio.wait(
                {consumer, acked},
                timeout=self._connect_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if acked not in done:
                if consumer in done:
                    await consumer  # raises what ended it
                    return
                raise TimeoutError("the server did not acknowledge the subscription")
            self._live.set()
            self.connections += 1
            await self._call(self._on_connect)
            await consumer
        finally:
            for task in (acked, consumer):
                task.cancel()
            await asyncio.gather(acked, consumer, return_exceptions=True)

    async def _consume(self, session: Any, request: GraphQLRequest) -> None:
        async for data in session.subscribe(request):
            change = data.get("onDatasetChanged") if isinstance(data, dict) else None
            if not isinstance(change, dict):
                continue
            name, count = change.get("datasetName"), change.get("syncCount")
            if not isinstance(name, str) or not isinstance(count, int):
                log.warning("ignoring a malformed change notification: %r", change)
                continue
            await self._call(self._on_change, name, count, bool(change.get("deleted")))

    async def _call(self, callback: Callable[..., Any] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            await maybe_await(callback(*args))
        except Exception:
            log.exception("dataset change subscription callback %r failed", callback)


class _RealtimeTransport(AppSyncWebsocketsTransport):
    """gql's AppSync transport that notes ``start_ack`` and connection errors, and
    honours the server's ``connectionTimeoutMs``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.subscribed = asyncio.Event()
        self.server_error: dict[str, Any] | None = None

    def _parse_answer(self, answer: str) -> tuple[str, int | None, Any]:
        with contextlib.suppress(ValueError):
            self._note(json.loads(answer))
        parsed: tuple[str, int | None, Any] = super()._parse_answer(answer)
        return parsed

    def _note(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        kind, payload = message.get("type"), message.get("payload")
        if kind == "start_ack":
            self.subscribed.set()
        elif kind == "connection_error" or (kind == "error" and "id" not in message):
            self.server_error = _first_error(payload)
        elif kind == "connection_ack" and isinstance(payload, dict):
            millis = payload.get("connectionTimeoutMs")
            if isinstance(millis, int | float) and millis > 0 and self.keep_alive_timeout:
                self.keep_alive_timeout = min(self.keep_alive_timeout, millis / 1000)


def _first_error(payload: Any) -> dict[str, Any]:
    """The first AppSync error object in an ``error``/``connection_error`` payload."""
    if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
        payload = payload["errors"][0] if payload["errors"] else {}
    return payload if isinstance(payload, dict) else {}


def _connection_error(exc: TransportError, transport: _RealtimeTransport) -> CogsyncError:
    """The cogsync error for a failed or dropped real-time connection."""
    if transport.server_error is not None:
        return translate_graphql_error(transport.server_error)
    if "keep-alive" in str(exc):  # gql's TransportServerError for a silent socket
        return OfflineError("the real-time connection went silent (no keep-alive); reconnecting")
    cause = exc.__cause__
    if isinstance(cause, InvalidStatus) and cause.response.status_code in (401, 403):
        return NotAuthorizedError(
            f"the real-time endpoint refused the connection (HTTP "
            f"{cause.response.status_code}): log in again"
        )
    return translate_transport_error(exc)
