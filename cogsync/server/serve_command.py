"""``cogsync serve``: the parser (flags from `cogsync.server.settings`) and the run loop.

The run loop logs where the server listens, serves until SIGINT or SIGTERM, then stops
gracefully (see `EmbeddedServer.stop`) and returns exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

from cogsync.exceptions import ConfigError
from cogsync.server.collector import QuietCollector, tune_collector
from cogsync.server.log_format import configure_logging
from cogsync.server.serve_options import server_kwargs
from cogsync.server.settings import add_flags, load_settings, render_settings

__all__ = ["add_parser", "run"]

_log = logging.getLogger("cogsync.serve")


def add_parser(subparsers: Any) -> None:
    """Add ``serve`` to the ``cogsync`` subcommands."""
    parser = subparsers.add_parser(
        "serve",
        help="run the sync server (GraphQL + real-time + Cognito Identity API)",
        description=(
            "Run the embedded cogsync server. It writes the client config (--config-out) "
            "and DIR/admin.json (admin credentials for its Cognito Identity API) on start; "
            "a restart on the same --data keeps identities, credentials and data. Every "
            "flag is also a COGSYNC_* environment variable and a key of the --settings "
            "file; flags win over the environment, which wins over the file."
        ),
    )
    add_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``cogsync serve`` with parsed ``args``; returns the exit status."""
    from cogsync.server.runner import EmbeddedServer

    settings = load_settings(args)
    if args.print_settings:
        sys.stdout.write(render_settings(settings))
        return 0
    configure_logging(settings.log_level, settings.log_format)
    issuers = _issuers(settings)
    server = EmbeddedServer(
        settings.data,
        host=settings.host,
        port=settings.port,
        allow_guests=not settings.no_guests,
        developer_provider=settings.developer_provider,
        oidc_issuers=issuers,
        oidc_refresh_interval=settings.oidc_refresh_interval,
        oidc_client_ids=settings.oidc_client_id,
        keepalive_interval=settings.keepalive,
        realtime=settings.realtime_limits(),
        config_out=settings.config_out,
        server_limits=settings.server_limits(),
        metrics_port=settings.metrics_port,
        shutdown_timeout=settings.shutdown_timeout,
        compression=settings.compression,
        **server_kwargs(settings),
    )
    asyncio.run(_serve_until_signal(server))
    return 0


def _issuers(settings: Any) -> dict[str, dict[str, Any] | None]:
    """Issuer URL -> its JWKS file's document, or None (OIDC discovery) without files."""
    from cogsync.server.identity import load_jwks
    from cogsync.server.oidc_keys import check_issuer_url

    for issuer in settings.oidc_issuer:
        check_issuer_url(issuer, allow_http=settings.allow_http_issuer)
    if not settings.jwks_file:
        return dict.fromkeys(settings.oidc_issuer)
    if len(settings.oidc_issuer) != len(settings.jwks_file):
        raise ConfigError(
            "give one --jwks-file for each --oidc-issuer, in the same order (or none: "
            "OIDC discovery)"
        )
    return {
        issuer: load_jwks(str(path))
        for issuer, path in zip(settings.oidc_issuer, settings.jwks_file, strict=True)
    }


async def _serve_until_signal(server: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        tune_collector()
        quiet = asyncio.create_task(QuietCollector().run())
        config = server.config
        _log.info("listening on %s", server.url)
        _log.info("GraphQL: %s", config.graphql_url)
        _log.info("real-time: %s", config.realtime_url)
        _log.info("identity API: %s", config.identity_endpoint)
        _log.info("identity pool: %s", config.identity_pool_id)
        _log.info("client config: %s", server.config_out or server.data_dir / "cogsync.json")
        _log.info("admin credentials: %s", server.data_dir / "admin.json")
        if server.metrics_port is not None:
            _log.info("metrics: http://%s:%d/metrics", server.host, server.metrics_port)
        await stop.wait()
        quiet.cancel()
        _log.info("stopping")
    _log.info("stopped")
