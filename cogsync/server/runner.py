"""`EmbeddedServer`: run `cogsync serve` inside a process (tests, ``cogsync demo``, benchmarks).

Everything lives in one data directory: ``identity.db`` (identities, credentials, keys),
``sync.db`` (datasets and records), ``admin.json`` (mode 0600) and ``cogsync.json``. A
restart on the same directory keeps the pool id, the admin key, identities and data.

Use it from asyncio (``async with EmbeddedServer(dir) as srv``) or from blocking code
(``with EmbeddedServer(dir) as srv``: the server then runs on its own event-loop thread).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from cogsync.config import Config
from cogsync.exceptions import ConfigError
from cogsync.limits import DEFAULT_LIMITS, Limits
from cogsync.server.admin import admin_routes
from cogsync.server.app import REALTIME, Compression, ServerSettings, create_app
from cogsync.server.bounds import DEFAULT_SERVER_LIMITS, ServerLimits
from cogsync.server.connections import CONNECTIONS
from cogsync.server.credentials import AdminCredentials, IdentityDatabase
from cogsync.server.health import probe_routes, writable
from cogsync.server.hooks import ServerHooks
from cogsync.server.identity import IdentitySettings
from cogsync.server.metrics import ServerMetrics
from cogsync.server.realtime_limits import RealtimeLimits
from cogsync.server.resolvers import SyncService
from cogsync.server.storage import ServerStorage
from cogsync.server.trusted_pools import TrustedPools
from cogsync.server.wire import GraphQLService

__all__ = ["EmbeddedServer"]


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class EmbeddedServer:
    """A `cogsync serve` server on ``host:port`` (port 0 picks a free port).

    Args:
        data_dir: the data directory (created if missing).
        host: interface to listen on.
        port: TCP port; 0 picks a free one (read it from `port` after start).
        region: region of a new identity pool (kept from the first start afterwards).
        allow_guests: issue identities without logins.
        developer_provider: the developer provider name for
            GetOpenIdTokenForDeveloperIdentity.
        oidc_issuers: OIDC issuer URL -> JWKS document (None: OIDC discovery), for
            ID-token logins.
        oidc_refresh_interval: least seconds between key-set refetches of a discovered
            issuer caused by unknown key ids (``--oidc-refresh-interval``).
        oidc_client_ids: app client ids an ID token's ``aud`` must name (empty: any).
        limits: per-identity limits (Cognito Sync's by default).
        hooks: operator hooks (sync trigger).
        keepalive_interval: seconds between real-time ``ka`` messages.
        realtime: real-time connection lifetimes and per-identity caps (`RealtimeLimits`;
            ``cogsync serve --realtime-*``).
        credential_lifetime: seconds issued credentials stay valid.
        clock: epoch-seconds clock for signatures, credentials and tokens (tests move it).
        config_out: also write the client config there (it always goes to
            ``data_dir/cogsync.json``).
        service: a GraphQL executor to use instead of the built-in `SyncService`; its
            ``subscribe`` refuses a subscription by raising `RequestRefused`.
        refused: ignored; kept so callers written for older releases (which named the
            custom service's refusal exception here) keep working.
        server_limits: bounds on connections, request reads, GraphQL documents, answers
            and the replay memo / change log (`ServerLimits`; defaults in
            ``docs/server-limits.md``).
        trusted_pools: identity pools whose OpenID tokens prove a migrated identity
            (``--trust-identity-pool``).
        metrics_port: serve ``GET /metrics`` on this port (0: any free one) instead of on
            the main port (``--metrics-port``).
        shutdown_timeout: seconds `stop` lets running requests finish before cancelling
            them (``--shutdown-timeout``).
        compression: when GraphQL answers are compressed: ``auto`` (not to loopback
            peers), ``always`` or ``never`` (``--compression``; see `ServerSettings`).
        compiled_documents: answer the client's own documents by their compiled
            operations (the default); False runs them through graphql-core (to compare).

    Attributes (after start):
        port: the port listened on.
        config: the client `Config` for this server.
        admin_credentials: the admin key (as in ``admin.json``).
        metrics: the server's `ServerMetrics` (its own Prometheus registry).
        metrics_port: the port of ``GET /metrics`` when served apart.
        storage: the `ServerStorage` (None with a custom ``service``).
        sync_service: the `SyncService` (None with a custom ``service``).
        identity_db: the `IdentityDatabase`.
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-east-1",
        allow_guests: bool = True,
        developer_provider: str = "login.cogsync.dev",
        oidc_issuers: Mapping[str, Mapping[str, Any] | None] | None = None,
        oidc_client_ids: Sequence[str] = (),
        limits: Limits = DEFAULT_LIMITS,
        hooks: ServerHooks | None = None,
        keepalive_interval: float = 60.0,
        realtime: RealtimeLimits | None = None,
        credential_lifetime: float = 3600.0,
        clock: Callable[[], float] = time.time,
        config_out: str | Path | None = None,
        service: GraphQLService | None = None,
        refused: type[Exception] | None = None,
        server_limits: ServerLimits = DEFAULT_SERVER_LIMITS,
        trusted_pools: TrustedPools | None = None,
        metrics_port: int | None = None,
        shutdown_timeout: float = 30.0,
        oidc_refresh_interval: float = 60.0,
        compression: Compression = "auto",
        compiled_documents: bool = True,
    ) -> None:
        del refused  # custom services refuse with RequestRefused
        self.server_limits = server_limits.fitted_to(limits)
        self.trusted_pools = trusted_pools
        self.data_dir, self.host, self.port, self.region = Path(data_dir), host, port, region
        self.allow_guests, self.developer_provider = allow_guests, developer_provider
        self.oidc_issuers = dict(oidc_issuers or {})
        self.oidc_refresh_interval = oidc_refresh_interval
        self.oidc_client_ids = tuple(oidc_client_ids)
        self.limits, self.hooks, self.clock = limits, hooks, clock
        self.keepalive_interval, self.credential_lifetime = keepalive_interval, credential_lifetime
        self.realtime = realtime or RealtimeLimits()
        self.config_out = Path(config_out) if config_out is not None else None
        self._service = service
        self.metrics = ServerMetrics()
        self.metrics_port = metrics_port
        self.shutdown_timeout = shutdown_timeout
        self.compression, self.compiled_documents = compression, compiled_documents
        self._metrics_runner: web.AppRunner | None = None
        self.storage: ServerStorage | None = None
        self.sync_service: SyncService | None = None
        self._serving_loop: asyncio.AbstractEventLoop | None = None
        self._db: IdentityDatabase | None = None
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._config: Config | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- state --------------------------------------------------------------------------

    @property
    def identity_db(self) -> IdentityDatabase:
        """The identity database (only while running)."""
        if self._db is None:
            raise RuntimeError("the server is not running: start it first")
        return self._db

    @property
    def config(self) -> Config:
        """The client config for this server (only while running)."""
        if self._config is None:
            raise RuntimeError("the server is not running: start it first")
        return self._config

    @property
    def admin_credentials(self) -> AdminCredentials:
        """The admin access key and secret (as in ``admin.json``)."""
        return self.identity_db.admin_credentials

    @property
    def url(self) -> str:
        """The server's base URL (``http://host:port``)."""
        return f"http://{_url_host(self.host)}:{self.port}"

    # -- asyncio lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Open the databases, start listening and write ``admin.json`` / ``cogsync.json``."""
        if self._runner is not None:
            raise RuntimeError("the server is already running")
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the data directory {self.data_dir}: {exc}") from exc
        self._serving_loop = asyncio.get_running_loop()
        db = IdentityDatabase(self.data_dir / "identity.db", region=self.region)
        try:
            service = self._build_service()
            settings = ServerSettings(
                identity=IdentitySettings(
                    allow_guests=self.allow_guests,
                    developer_provider=self.developer_provider,
                    oidc_issuers=self.oidc_issuers,
                    oidc_refresh_interval=self.oidc_refresh_interval,
                    oidc_client_ids=self.oidc_client_ids,
                    credential_lifetime=self.credential_lifetime,
                    on_merge=self._merge if self.storage is not None else None,
                    trusted_pools=self.trusted_pools,
                ),
                keepalive_interval=self.keepalive_interval,
                limits=self.server_limits,
                realtime=self.realtime,
                compression=self.compression,
            )
            app = create_app(db, service, settings=settings, clock=self.clock, metrics=self.metrics)
            self._watch(app, db)
            if self.storage is not None:
                app.add_routes(
                    admin_routes(
                        self.storage,
                        db,
                        clock=self.clock,
                        developer_provider=self.developer_provider,
                    )
                )
            app.add_routes(probe_routes(self._not_ready))
            if self.metrics_port is None:
                app.add_routes(self.metrics.routes())
            idle = self.server_limits.idle_timeout
            runner = web.AppRunner(
                app,
                access_log=None,
                keepalive_timeout=idle,
                # aiohttp waits twice (for handlers, then for them cancelled): half each
                shutdown_timeout=self.shutdown_timeout / 2,
            )
            await runner.setup()
            assert runner.server is not None
            factory = app[CONNECTIONS].protocol_factory(runner.server)
            try:
                listener = await asyncio.get_running_loop().create_server(
                    factory, self.host or None, self.port, reuse_address=True
                )
            except OSError as exc:
                await runner.cleanup()
                raise ConfigError(
                    f"cannot listen on {self.host}:{self.port}: {exc.strerror}; pick another "
                    "--port or stop the other server"
                ) from exc
        except BaseException:
            db.close()
            self._close_storage()
            raise
        self._db = db
        self._runner, self._listener = runner, listener
        if self.port == 0:
            self.port = int(listener.sockets[0].getsockname()[1])
        if self.metrics_port is not None:
            await self._serve_metrics_apart()
        self._config = Config(
            region=db.region,
            identity_pool_id=db.pool_id,
            graphql_url=f"{self.url}/graphql",
            realtime_url=f"ws://{self.url.removeprefix('http://')}/graphql/realtime",
            identity_endpoint=f"{self.url}/",
        )
        try:
            self._write_files()
        except (OSError, ConfigError) as exc:
            await self.stop()
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"cannot write {exc.filename}: {exc.strerror}") from exc

    def _watch(self, app: web.Application, db: IdentityDatabase) -> None:
        """Point the scrape-time metrics at this run's objects."""
        sources, realtime = self.metrics.sources, app[REALTIME]
        sources.open_connections = lambda: len(realtime.connections)
        sources.open_subscriptions = lambda: realtime.subscription_count
        sources.identities = db.identity_count
        sources.database_bytes = self._database_bytes
        if self.sync_service is not None:
            hub = self.sync_service.hub
            sources.notifications_sent = lambda: hub.sent
            sources.notifications_dropped = lambda: hub.dropped

    def _database_bytes(self) -> int:
        total = 0
        for name in ("identity.db", "sync.db"):
            for suffix in ("", "-wal"):
                path = self.data_dir / (name + suffix)
                total += path.stat().st_size if path.exists() else 0
        return total

    async def _serve_metrics_apart(self) -> None:
        app = web.Application()
        app.add_routes(self.metrics.routes())
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host or None, self.metrics_port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            await self.stop()
            raise ConfigError(
                f"cannot listen on {self.host}:{self.metrics_port} for metrics: {exc.strerror}"
            ) from exc
        self._metrics_runner = runner
        if self.metrics_port == 0:
            self.metrics_port = int(runner.addresses[0][1])

    def _not_ready(self) -> str | None:
        """Why the server cannot take traffic now (None: ready); for ``GET /ready``."""
        runner = self._runner
        if runner is None or self._db is None:
            return "the server is starting or stopping"
        if not runner.app[REALTIME].running:
            return "the real-time hub is not running"
        return writable(self.data_dir)

    def _build_service(self) -> GraphQLService:
        if self._service is not None:
            return self._service
        self.storage = ServerStorage(
            self.data_dir / "sync.db", self.limits, retention=self.server_limits
        )
        self.sync_service = SyncService(
            self.storage,
            hooks=self.hooks,
            server_limits=self.server_limits,
            compiled_documents=self.compiled_documents,
        )
        return self.sync_service

    def _merge(self, guest_identity_id: str, identity_id: str) -> None:
        """Move a guest's datasets to the identity it logged in to (from a worker thread)."""
        if self.sync_service is not None and self._serving_loop is not None:
            merge = self.sync_service.merge_identity(guest_identity_id, identity_id)
            asyncio.run_coroutine_threadsafe(merge, self._serving_loop).result()

    def _write_files(self) -> None:
        admin = self.admin_credentials
        admin_path = self.data_dir / "admin.json"
        fd = os.open(admin_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "access_key_id": admin.access_key_id,
                    "secret_access_key": admin.secret_access_key,
                },
                handle,
                indent=2,
            )
            handle.write("\n")
        os.chmod(admin_path, 0o600)
        self.config.dump(self.data_dir / "cogsync.json")
        if self.config_out is not None:
            self.config.dump(self.config_out)

    def _close_storage(self) -> None:
        if self.sync_service is not None:
            self.sync_service.close()
            self.sync_service = None
        if self.storage is not None:
            self.storage.close()
            self.storage = None

    async def stop(self) -> None:
        """Stop gracefully: stop accepting (``/ready`` fails from now on), cut connections
        that only wait on their client (idle, a request head or body still arriving), close
        WebSockets with code 1001 so clients reconnect elsewhere, let running requests finish
        (up to ``shutdown_timeout`` seconds, then every connection is aborted; a push cut
        short is then not applied or, if its transaction committed, replayed to the client's
        retry), then close the databases (a storage job under way completes first)."""
        runner, self._runner = self._runner, None
        listener, self._listener = self._listener, None
        metrics_runner, self._metrics_runner = self._metrics_runner, None
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        if listener is not None:
            listener.close()  # stop accepting; the runner then closes every connection
        if runner is not None:
            guard = runner.app[CONNECTIONS]
            guard.cut_waiting()
            cleanup = asyncio.ensure_future(runner.cleanup())
            done, _ = await asyncio.wait({cleanup}, timeout=self.shutdown_timeout)
            if not done:
                guard.abort_all()
            await cleanup
        if listener is not None:
            await listener.wait_closed()
        self._close_storage()
        if self._db is not None:
            self._db.close()
            self._db = None
        self._config = None

    async def __aenter__(self) -> EmbeddedServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- blocking lifecycle (own event-loop thread) -------------------------------------

    def __enter__(self) -> EmbeddedServer:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="cogsync-server", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result()
        except BaseException:
            self._stop_thread()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result()
        self._stop_thread()

    def _stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
