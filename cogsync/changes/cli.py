"""``cogsync changes export``: the change log of a `cogsync serve` data directory, as JSON
lines or Kinesis records, in order, resumable.

Destinations: stdout (default), ``--out FILE`` (appended; a re-run continues after the
file's last line, so nothing is written twice), or ``--to-kinesis STREAM`` (``PutRecords``
with boto3's usual credentials; at least once, resumed from ``--checkpoint``). ``--after
SEQ`` starts after a sequence number; ``--follow`` keeps exporting new changes until
SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from cogsync.changes.export import ChangeSink, export_changes
from cogsync.changes.log import ChangeLogReader
from cogsync.changes.sinks import JsonlSink, KinesisSink, SeqCheckpoint
from cogsync.exceptions import ConfigError

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    """Add ``changes export`` to the ``cogsync`` subparsers."""
    parser = subparsers.add_parser(
        "changes", help="export the change log of a cogsync serve data directory"
    )
    actions = parser.add_subparsers(dest="changes_command", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="every accepted batch, in order, as JSON lines or Kinesis records",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    export.add_argument("--data", type=Path, required=True, help="the server's --data directory")
    export.add_argument("--after", type=int, default=0, metavar="SEQ", help="start after SEQ")
    export.add_argument("--follow", action="store_true", help="keep exporting new changes")
    export.add_argument("--format", choices=["jsonl"], default="jsonl", help="jsonl (default)")
    where = export.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, metavar="FILE", help="append to FILE (resumable)")
    where.add_argument("--to-kinesis", metavar="STREAM", help="a Kinesis stream name or ARN")
    export.add_argument("--region", help="the stream's region (default: boto3's)")
    export.add_argument(
        "--checkpoint",
        type=Path,
        metavar="FILE",
        help="last sequence written (default for Kinesis: cogsync-changes-<stream>.json)",
    )
    export.add_argument(
        "--poll", type=float, default=0.5, metavar="SECONDS", help="--follow poll interval"
    )
    export.set_defaults(func=run_export)


def _sink(args: argparse.Namespace) -> ChangeSink:
    if args.to_kinesis:
        import boto3
        from botocore.exceptions import BotoCoreError

        stream = str(args.to_kinesis)
        default = f"cogsync-changes-{stream.rsplit('/', 1)[-1]}.json"
        checkpoint = SeqCheckpoint(Path(args.checkpoint or default), f"kinesis {stream}")
        try:
            client = boto3.session.Session(region_name=args.region).client("kinesis")
        except (BotoCoreError, ValueError) as exc:
            raise ConfigError(f"cannot use Kinesis: {exc}; pass --region") from exc
        return KinesisSink(stream, client, checkpoint)
    if args.out:
        if args.checkpoint:
            raise ConfigError("--out resumes from the file itself: drop --checkpoint")
        return JsonlSink(args.out)
    resume = SeqCheckpoint(args.checkpoint, "stdout") if args.checkpoint else None
    return JsonlSink(sys.stdout, checkpoint=resume)


def run_export(args: argparse.Namespace) -> int:
    """Run ``cogsync changes export``; return the exit status."""
    if args.after < 0:
        raise ConfigError("--after must be 0 or a sequence number")
    if not args.poll > 0:
        raise ConfigError("--poll must be more than 0 seconds")
    reader = ChangeLogReader(args.data)
    sink = _sink(args)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(sig, lambda *_: stop.set())
    start = max(args.after, sink.last_seq)
    print(f"cogsync changes: exporting after sequence {start}", file=sys.stderr, flush=True)
    try:
        last = export_changes(
            reader,
            sink,
            after_seq=args.after,
            follow=args.follow,
            poll_interval=args.poll,
            stop=stop,
        )
    finally:
        reader.close()
        if isinstance(sink, JsonlSink):
            sink.close()
    print(f"cogsync changes: exported up to sequence {last}", file=sys.stderr)
    return 0
