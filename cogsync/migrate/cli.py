"""`cogsync migrate`: copy an identity pool's Cognito Sync data to a cogsync backend.

The run: list every identity of the pool, then for each (``--concurrency`` at a time) list
its datasets and copy each one's records changed since the checkpointed sync count (all of
them the first time) in one idempotent import. The checkpoint file (JSON, replaced
atomically) records each dataset's copied sync count and the identities finished by the
current run, so a killed run started again skips finished identities and re-imports at most
the datasets in flight, which changes nothing twice. A later run copies only what changed
since, and turns datasets deleted at the source into tombstones.

``--dry-run`` writes nothing (not even the checkpoint) and prints what would move;
``--verify`` then compares every source dataset with the target (record counts and a
SHA-256 over the sorted key/value pairs) and exits 1 on any difference.

Exit codes: 0 done; 1 some datasets failed or differ (each printed on one line); 2 the run
could not start or had to stop (one line saying what to fix).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from cogsync.exceptions import CogsyncError, ConfigError
from cogsync.migrate.checkpoint import Checkpoint
from cogsync.migrate.dynamodb import DynamoTarget
from cogsync.migrate.migrator import Migrator
from cogsync.migrate.serve import ServerTarget
from cogsync.migrate.source import CognitoSyncSource
from cogsync.migrate.target import Target

__all__ = ["add_parser", "main", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``migrate`` command to ``argparse`` subparsers (``func`` = `run`); return it."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "migrate",
        help="copy an identity pool's data off Cognito Sync",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    _add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


_Option = tuple[str, dict[str, Any]]

_SOURCE_OPTIONS: tuple[_Option, ...] = (
    ("--identity-pool-id", {"required": True, "help": "the pool (REGION:GUID)"}),
    ("--region", {"required": True, "help": "the AWS region of the pool"}),
    (
        "--source-endpoint-url",
        {"help": "one URL serving Cognito Identity and Cognito Sync (default: AWS)"},
    ),
)
_TARGET_OPTIONS: tuple[_Option, ...] = (  # exactly one of them
    ("--to", {"metavar": "COGSYNC_JSON", "help": "the client config of the server"}),
    ("--to-stack", {"metavar": "STACK", "help": "a deployed server_schema stack"}),
)
_RUN_OPTIONS: tuple[_Option, ...] = (
    ("--stack-region", {"metavar": "REGION", "help": "region of --to-stack (default: --region)"}),
    ("--admin-credentials", {"metavar": "ADMIN_JSON", "help": "the server's DIR/admin.json"}),
    (
        "--checkpoint",
        {
            "metavar": "FILE",
            "help": "resumable state (default: cogsync-migrate-<pool>.json in this directory)",
        },
    ),
    ("--dry-run", {"action": "store_true", "help": "write nothing; print what would move"}),
    (
        "--verify",
        {
            "action": "store_true",
            "help": "compare source and target afterwards (with --dry-run: only compare)",
        },
    ),
    (
        "--concurrency",
        {"type": int, "default": 4, "metavar": "N", "help": "identities at once (4)"},
    ),
    (
        "--allow-new-identity-ids",
        {
            "action": "store_true",
            "help": "--to-stack: copy into a stack whose identity pool is not the source pool "
            "(devices then get new identity ids and do not see the copied data)",
        },
    ),
)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    for add, options in (
        (parser.add_argument, _SOURCE_OPTIONS),
        (where.add_argument, _TARGET_OPTIONS),
        (parser.add_argument, _RUN_OPTIONS),
    ):
        for flag, settings in options:
            add(flag, **settings)


def _target(args: argparse.Namespace) -> Target:
    if args.to_stack:
        if args.admin_credentials:
            raise ConfigError("--admin-credentials is for --to; --to-stack uses AWS credentials")
        target = DynamoTarget(args.to_stack, region=args.stack_region or args.region)
        _check_stack_pool(args, target.identity_pool_id)
        return target
    if not args.admin_credentials:
        raise ConfigError("--to needs --admin-credentials DIR/admin.json of that server")
    return ServerTarget(args.to, args.admin_credentials)


def _check_stack_pool(args: argparse.Namespace, stack_pool: str | None) -> None:
    """Refuse a stack whose identity pool is not the source pool (unless allowed)."""
    if stack_pool == args.identity_pool_id or args.allow_new_identity_ids:
        return
    serves = f"serves identity pool {stack_pool}" if stack_pool else "has no IdentityPoolId output"
    raise ConfigError(
        f"stack {args.to_stack!r} {serves}, not the source pool {args.identity_pool_id}: "
        "devices would get new identity ids there and never see the copied data; deploy the "
        f"stack with ExistingIdentityPoolId={args.identity_pool_id} (see docs/migrating.md) "
        "or pass --allow-new-identity-ids"
    )


def run(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """Run ``cogsync migrate`` with parsed arguments; return the exit code (0, 1 or 2)."""
    stream = out if out is not None else sys.stderr
    migrator: Migrator | None = None
    try:
        if args.concurrency < 1:
            raise ConfigError("--concurrency must be 1 or more")
        source = CognitoSyncSource(
            args.identity_pool_id, args.region, endpoint_url=args.source_endpoint_url
        )
        target = _target(args)
        default = f"cogsync-migrate-{args.identity_pool_id.replace(':', '_')}.json"
        checkpoint = Checkpoint(
            Path(args.checkpoint or default),
            source.identity_pool_id,
            target.description,
            readonly=args.dry_run,
        )
        migrator = Migrator(
            source,
            target,
            checkpoint,
            dry_run=args.dry_run,
            concurrency=args.concurrency,
            out=stream,
        )
        failed = 0
        if not (args.dry_run and args.verify):
            failed = migrator.migrate()
            stream.write(f"{'dry run' if args.dry_run else 'summary'}: {migrator.stats.line()}\n")
        if args.verify:
            failed += migrator.verify()
        return 1 if failed else 0
    except CogsyncError as exc:
        if migrator is not None:
            stream.write(f"\nstopped after: {migrator.stats.line()}\n")
        stream.write(f"cogsync migrate: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        stream.write("\ncogsync migrate: interrupted; run the same command again to resume\n")
        return 130


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (the arguments after ``migrate``) and run; return the exit code."""
    parser = argparse.ArgumentParser(prog="cogsync migrate", description=__doc__)
    _add_arguments(parser)
    return run(parser.parse_args(argv))
