"""The ``cogsync`` command line: one subcommand per job.

Each subcommand is added by a ``_add_<name>(subparsers)`` function listed in
``_SUBCOMMANDS``; it sets ``func`` (``(args) -> exit status``) on its parser.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cogsync.changes.cli import add_parser as _add_changes
from cogsync.exceptions import CogsyncError, ConfigError
from cogsync.server.log_format import LOG_FORMATS, LOG_LEVELS, configure_logging
from cogsync.server.realtime_limits import add_realtime_arguments, realtime_limits_from_args
from cogsync.server.serve_options import add_options as add_serve_options
from cogsync.server.serve_options import server_kwargs as serve_option_kwargs

__all__ = ["build_parser", "main"]

_log = logging.getLogger("cogsync.serve")

_SubParsers = Any  # argparse's private _SubParsersAction


def _add_serve(subparsers: _SubParsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the sync server (GraphQL + real-time + Cognito Identity API)",
        description=(
            "Run the embedded cogsync server. It writes the client config (--config-out) "
            "and DIR/admin.json (admin credentials for its Cognito Identity API) on start; "
            "a restart on the same --data keeps identities, credentials and data."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 = any)")
    parser.add_argument("--data", type=Path, default=Path("cogsync-data"), help="data directory")
    parser.add_argument(
        "--config-out",
        type=Path,
        default=Path("cogsync.json"),
        help="where to write the client config (default cogsync.json)",
    )
    parser.add_argument("--no-guests", action="store_true", help="refuse identities without logins")
    parser.add_argument(
        "--developer-provider",
        default="login.cogsync.dev",
        help="developer provider name for GetOpenIdTokenForDeveloperIdentity",
    )
    parser.add_argument(
        "--oidc-issuer",
        action="append",
        default=[],
        metavar="URL",
        help="accept ID tokens of this issuer (repeatable; pair each with --jwks-file)",
    )
    parser.add_argument(
        "--jwks-file",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="JWKS of the matching --oidc-issuer",
    )
    parser.add_argument(
        "--oidc-client-id",
        action="append",
        default=[],
        metavar="ID",
        help="accept only ID tokens issued to this app client id (repeatable; recommended)",
    )
    parser.add_argument(
        "--keepalive", type=float, default=60.0, help="seconds between real-time ka messages"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve GET /metrics on this port instead of the main one",
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="log threshold (default info)"
    )
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default="text", help="log lines as text or JSON"
    )
    _add_limit_flags(parser)
    add_serve_options(parser)  # --sync-trigger, --trust-identity-pool, --trusted-pool-jwks
    add_realtime_arguments(parser)
    parser.set_defaults(func=_run_serve)


def _add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--<field>`` flag per `ServerLimits` field (docs/server-limits.md)."""
    from dataclasses import fields

    from cogsync.server.bounds import DEFAULT_SERVER_LIMITS, LIMIT_HELP

    group = parser.add_argument_group("limits (see docs/server-limits.md)")
    for spec in fields(DEFAULT_SERVER_LIMITS):
        default = getattr(DEFAULT_SERVER_LIMITS, spec.name)
        group.add_argument(
            "--" + spec.name.replace("_", "-"),
            type=type(default),
            default=default,
            metavar="N",
            help=f"{LIMIT_HELP[spec.name]} (default {default})",
        )


def _limits_from_flags(args: argparse.Namespace) -> Any:
    from dataclasses import fields

    from cogsync.server.bounds import ServerLimits

    return ServerLimits(**{f.name: getattr(args, f.name) for f in fields(ServerLimits)})


def _run_serve(args: argparse.Namespace) -> int:
    from cogsync.server.identity import load_jwks
    from cogsync.server.runner import EmbeddedServer

    configure_logging(args.log_level, args.log_format)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0 (any free port) to 65535, not {args.port}")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise ConfigError(f"--metrics-port must be 0 to 65535, not {args.metrics_port}")
    if not args.keepalive >= 1.0:  # also refuses nan
        raise ConfigError(f"--keepalive must be at least 1 second, not {args.keepalive}")
    if len(args.oidc_issuer) != len(args.jwks_file):
        raise ConfigError("give one --jwks-file for each --oidc-issuer, in the same order")
    issuers = {
        issuer: load_jwks(str(path))
        for issuer, path in zip(args.oidc_issuer, args.jwks_file, strict=True)
    }
    for issuer in issuers:
        if not issuer.startswith("https://"):
            raise ConfigError(f"--oidc-issuer {issuer!r} must be an https:// URL")
    server = EmbeddedServer(
        args.data,
        host=args.host,
        port=args.port,
        allow_guests=not args.no_guests,
        developer_provider=args.developer_provider,
        oidc_issuers=issuers,
        oidc_client_ids=args.oidc_client_id,
        keepalive_interval=args.keepalive,
        realtime=realtime_limits_from_args(args),
        config_out=args.config_out,
        server_limits=_limits_from_flags(args),
        metrics_port=args.metrics_port,
        **serve_option_kwargs(args),
    )
    asyncio.run(_serve_until_signal(server))
    return 0


async def _serve_until_signal(server: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with server:
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
        _log.info("stopping")


def _add_demo(subparsers: _SubParsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run an embedded server and two devices: offline edits, a conflict, push sync",
        description="Exit status 0 only if both devices converge.",
    )
    parser.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from cogsync.demo import main as demo_main

    return demo_main()


def _add_migrate(subparsers: _SubParsers) -> None:
    from cogsync.migrate import add_parser

    add_parser(subparsers)


def _add_inspect(subparsers: _SubParsers) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="show the datasets, records and dirty state of a device file (read-only)",
    )
    parser.add_argument("db", type=Path, help="the device's SQLite file")
    parser.set_defaults(func=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> int:
    from cogsync.store.sqlite import SQLiteStore

    store = SQLiteStore(args.db, read_only=True)  # never creates, upgrades or changes it
    try:
        identity = store.identity_id()
        print(f"device   {store.device_id()}")
        print(f"identity {identity or '(not known yet)'}")
        owners = [o for o in (identity, store.provisional_owner()) if o]
        for owner in owners:
            for state in store.list_datasets(owner):
                records = store.get_records(owner, state.name)
                dirty = sum(1 for r in records.values() if r.dirty)
                flag = " (deletion pending)" if state.deleted_pending else ""
                print(
                    f"\n{owner} / {state.name}{flag}: last sync count {state.last_sync_count}, "
                    f"{len(records)} records, {dirty} dirty"
                )
                for key, rec in sorted(records.items()):
                    mark = "*" if rec.dirty else " "
                    value = "(removed)" if rec.value is None else repr(rec.value[:60])
                    print(f"  {mark} {key} = {value}  [sync {rec.sync_count}]")
    finally:
        store.close()
    return 0


def _add_config(subparsers: _SubParsers) -> None:
    parser = subparsers.add_parser("config", help="write a client config (cogsync.json)")
    actions = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    stack = actions.add_parser(
        "from-stack", help="from the outputs of a deployed server_schema CloudFormation stack"
    )
    stack.add_argument("stack", help="the CloudFormation stack name")
    stack.add_argument("--region", help="the stack's region (default: boto3's)")
    stack.add_argument("--out", type=Path, default=Path("cogsync.json"), help="file to write")
    stack.set_defaults(func=_run_config_from_stack)


def _run_config_from_stack(args: argparse.Namespace) -> int:
    from cogsync.stack import config_from_stack

    config = config_from_stack(args.stack, region=args.region, out=args.out)
    print(f"wrote {args.out} for {config.graphql_url}")
    return 0


_SUBCOMMANDS: tuple[Callable[[_SubParsers], None], ...] = (
    _add_serve,
    _add_demo,
    _add_migrate,
    _add_inspect,
    _add_config,
    _add_changes,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``cogsync`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="cogsync",
        description="Offline-first per-identity datasets synced across devices.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cogsync`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except CogsyncError as exc:
        print(f"cogsync {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
