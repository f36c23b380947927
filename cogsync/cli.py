"""The ``cogsync`` command line: one subcommand per job.

Each subcommand is added by a ``_add_<name>(subparsers)`` function listed in
``_SUBCOMMANDS``; it sets ``func`` (``(args) -> exit status``) on its parser.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cogsync.changes.cli import add_parser as _add_changes
from cogsync.exceptions import CogsyncError
from cogsync.server.serve_command import add_parser as _add_serve

__all__ = ["build_parser", "main"]

_SubParsers = Any  # argparse's private _SubParsersAction


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


def _add_backup(subparsers: _SubParsers) -> None:
    parser = subparsers.add_parser(
        "backup",
        help="copy a cogsync serve data directory consistently (safe while it serves)",
        description="SQLite online backup of DIR's databases into the new directory OUT.",
    )
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="data directory")
    parser.add_argument("out", type=Path, metavar="OUT", help="new directory for the copy")
    parser.set_defaults(func=_run_backup)


def _run_backup(args: argparse.Namespace) -> int:
    from cogsync.server.backup import backup_data_dir

    for path in backup_data_dir(args.data, args.out):
        print(f"wrote {path}")
    return 0


_SUBCOMMANDS: tuple[Callable[[_SubParsers], None], ...] = (
    _add_serve,
    _add_demo,
    _add_migrate,
    _add_inspect,
    _add_config,
    _add_changes,
    _add_backup,
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
