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
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from cogsync.exceptions import CogsyncError, ConfigError, LimitExceededError, UsageError
from cogsync.limits import record_size
from cogsync.migrate_dynamodb import DynamoTarget
from cogsync.migrate_source import CognitoSyncSource, SourceRecords, SyncCountGone
from cogsync.migrate_target import ServerTarget, Target

__all__ = ["Checkpoint", "MigrationStats", "Migrator", "add_parser", "main", "run"]

_CHECKPOINT_VERSION = 1


class Checkpoint:
    """The resumable state of a migration, kept in one JSON file.

    Args:
        path: the file (read if it exists; written atomically by `save`).
        pool_id: the identity pool being migrated (a checkpoint of another pool is refused).
        target: a description of the target (likewise).
        readonly: never write the file (``--dry-run``).
    """

    def __init__(self, path: Path, pool_id: str, target: str, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._lock = threading.Lock()
        self._dirty = False
        self._saved_at = 0.0
        self.data: dict[str, Any] = {
            "version": _CHECKPOINT_VERSION,
            "identityPoolId": pool_id,
            "target": target,
            "datasets": {},
            "run": {"complete": True, "done": []},
        }
        if path.exists():
            self._load(pool_id, target)
        self._done: set[str] = set(self.data["run"]["done"])

    def _load(self, pool_id: str, target: str) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"checkpoint {self.path} is unreadable ({exc}): move it away to start over"
            ) from exc
        if not isinstance(data, dict) or data.get("version") != _CHECKPOINT_VERSION:
            raise ConfigError(f"{self.path} is not a cogsync migrate checkpoint")
        for key, expected in (("identityPoolId", pool_id), ("target", target)):
            if data.get(key) != expected:
                raise ConfigError(
                    f"checkpoint {self.path} belongs to {key} {data.get(key)!r}, not "
                    f"{expected!r}: pass another --checkpoint for this migration"
                )
        self.data = data

    @property
    def resuming(self) -> bool:
        """True when the last run stopped before finishing."""
        return not self.data["run"]["complete"]

    def start_run(self) -> None:
        """Begin a run: continue an unfinished one, or start a fresh pass over everything."""
        with self._lock:
            if self.data["run"]["complete"]:
                self.data["run"] = {"complete": False, "done": []}
                self._done = set()
                self._dirty = True
        self.save(force=True)

    def finish_run(self) -> None:
        """Mark the run complete (the next one re-checks every identity for changes)."""
        with self._lock:
            self.data["run"] = {"complete": True, "done": []}
            self._done = set()
            self._dirty = True
        self.save(force=True)

    def is_done(self, identity_id: str) -> bool:
        """True if the current run already finished this identity."""
        return identity_id in self._done

    def datasets_of(self, identity_id: str) -> dict[str, int]:
        """Dataset name -> sync count copied, for one identity."""
        with self._lock:
            return dict(self.data["datasets"].get(identity_id, {}))

    def mark_dataset(self, identity_id: str, name: str, sync_count: int | None) -> None:
        """Record a dataset as copied up to ``sync_count`` (None: forget it, it was deleted)."""
        with self._lock:
            datasets = self.data["datasets"].setdefault(identity_id, {})
            if sync_count is None:
                datasets.pop(name, None)
            else:
                datasets[name] = sync_count
            self._dirty = True

    def mark_identity_done(self, identity_id: str) -> None:
        """Record that the current run finished an identity."""
        with self._lock:
            if identity_id not in self._done:
                self._done.add(identity_id)
                self.data["run"]["done"].append(identity_id)
                self._dirty = True
        self.save()

    def save(self, *, force: bool = False, interval: float = 0.5) -> None:
        """Write the file atomically (temp file + ``os.replace``), at most every ``interval``."""
        if self.readonly:
            return
        with self._lock:
            if not self._dirty or (not force and time.monotonic() - self._saved_at < interval):
                return
            text = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(text)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._dirty = False
            self._saved_at = time.monotonic()


@dataclass
class MigrationStats:
    """Counters of one run, for progress lines and the summary."""

    identities_total: int = 0
    identities: int = 0
    datasets: int = 0
    records: int = 0
    bytes: int = 0
    skipped: int = 0
    errors: int = 0
    differ: int = 0
    started: float = 0.0

    def line(self) -> str:
        """One line: what has been done so far."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return (
            f"identities {self.identities}/{self.identities_total}, datasets {self.datasets}, "
            f"records {self.records}, bytes {self.bytes}, skipped {self.skipped}, "
            f"errors {self.errors} ({elapsed:.1f} s, {self.records / elapsed:.0f} records/s)"
        )


def dataset_digest(pairs: list[tuple[str, str | None]] | tuple[tuple[str, str | None], ...]) -> str:
    """SHA-256 over a dataset's (key, value) pairs sorted by key; null values included."""
    text = json.dumps(sorted(pairs), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Progress:
    """A progress bar on a terminal, plain log lines otherwise."""

    def __init__(self, stats: MigrationStats, out: TextIO) -> None:
        self.stats = stats
        self.out = out
        self.tty = out.isatty()
        self._lock = threading.Lock()
        self._last = 0.0

    def message(self, text: str) -> None:
        with self._lock:
            self.out.write(("\r\033[K" if self.tty else "") + text + "\n")
            self.out.flush()

    def tick(self, *, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < (0.1 if self.tty else 2.0):
                return
            self._last = now
            if self.tty:
                total = max(self.stats.identities_total, 1)
                filled = int(30 * self.stats.identities / total)
                bar = "#" * filled + "-" * (30 - filled)
                self.out.write(f"\r[{bar}] {self.stats.line()}")
            else:
                self.out.write(f"migrate: {self.stats.line()}\n")
            self.out.flush()


class Migrator:
    """Copies (or verifies) every identity of a source into a target.

    Args:
        source: the Cognito Sync pool.
        target: where the data goes (None only for a dry run without verification).
        checkpoint: the resumable state.
        dry_run: write nothing; print what would move.
        concurrency: identities handled at once.
        out: where progress, per-dataset lines and the summary go.
    """

    def __init__(
        self,
        source: CognitoSyncSource,
        target: Target | None,
        checkpoint: Checkpoint,
        *,
        dry_run: bool = False,
        concurrency: int = 4,
        out: TextIO = sys.stderr,
    ) -> None:
        self.source = source
        self.target = target
        self.checkpoint = checkpoint
        self.dry_run = dry_run
        self.concurrency = max(1, concurrency)
        self.stats = MigrationStats(started=time.monotonic())
        self.progress = _Progress(self.stats, out)
        self._count_lock = threading.Lock()
        self._identity_ids: list[str] | None = None

    def _add(self, **counts: int) -> None:
        with self._count_lock:
            for name, value in counts.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)
        self.progress.tick()

    def _identities(self) -> list[str]:
        if self._identity_ids is None:
            self._identity_ids = [i for page in self.source.identity_pages() for i in page]
            self.stats.identities_total = len(self._identity_ids)
        return self._identity_ids

    def _each_identity(self, work: Callable[[str], None], identities: list[str]) -> None:
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="migrate") as pool:
            futures: list[Future[None]] = [pool.submit(work, i) for i in identities]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                pool.shutdown(wait=True, cancel_futures=True)
                raise failed[0].exception()  # type: ignore[misc]

    def migrate(self) -> int:
        """Copy everything changed since the checkpoint; return the number of failed datasets."""
        identities = self._identities()
        if not self.dry_run:
            self.checkpoint.start_run()
        try:
            self._each_identity(self._migrate_identity, identities)
        finally:
            self.checkpoint.save(force=True)
        if not self.dry_run and self.stats.errors == 0:
            self.checkpoint.finish_run()
        self.progress.tick(force=True)
        return self.stats.errors

    def _migrate_identity(self, identity_id: str) -> None:
        if self.checkpoint.is_done(identity_id):
            self._add(identities=1, skipped=1)
            return
        copied = self.checkpoint.datasets_of(identity_id)
        present = self.source.datasets(identity_id)
        ok = [self._migrate_dataset(identity_id, d.name, copied.get(d.name)) for d in present]
        for name in sorted(set(copied) - {d.name for d in present}):
            self._delete_dataset(identity_id, name, copied[name])
        if not self.dry_run and all(ok):  # a failed dataset is retried by the next run
            self.checkpoint.mark_identity_done(identity_id)
        self._add(identities=1)

    def _read(self, identity_id: str, name: str, since: int) -> SourceRecords:
        try:
            return self.source.records(identity_id, name, since)
        except SyncCountGone:  # deleted and re-created at the source: copy it all again
            return self.source.records(identity_id, name, 0)

    def _migrate_dataset(self, identity_id: str, name: str, since: int | None) -> bool:
        """Copy one dataset's changes; False if the target refused it (reported)."""
        data = self._read(identity_id, name, since or 0)
        if not data.exists:
            return True
        if since is not None and data.sync_count == since and not data.records:
            self._add(skipped=1)
            return True
        size = sum(record_size(r.key, r.value) for r in data.records)
        where = f"{identity_id}/{name}"
        if self.dry_run:
            self.progress.message(
                f"would copy {where}: {len(data.records)} records, {size} bytes, sync count "
                f"{since or 0} -> {data.sync_count}"
            )
        else:
            assert self.target is not None
            try:
                self.target.import_dataset(identity_id, name, data)
            except UsageError as exc:
                hint = ""
                if isinstance(exc, LimitExceededError):
                    hint = " (the target's limit: raise it on the server or shrink the source)"
                self.progress.message(f"error: {where}: {exc}{hint}")
                self._add(errors=1)
                return False
            self.checkpoint.mark_dataset(identity_id, name, data.sync_count)
        self._add(datasets=1, records=len(data.records), bytes=size)
        return True

    def _delete_dataset(self, identity_id: str, name: str, copied: int) -> None:
        where = f"{identity_id}/{name}"
        if self.dry_run:
            self.progress.message(f"would delete {where} (deleted at the source)")
            return
        assert self.target is not None
        gone = SourceRecords(sync_count=copied, records=(), exists=False)
        self.target.import_dataset(identity_id, name, gone, deleted=True)
        self.checkpoint.mark_dataset(identity_id, name, None)
        self._add(datasets=1)

    def verify(self) -> int:
        """Compare every source dataset with the target; return how many differ."""
        assert self.target is not None
        target = self.target
        checked = [0]

        def check(identity_id: str) -> None:
            for dataset in self.source.datasets(identity_id):
                source = self.source.records(identity_id, dataset.name, 0)
                if not source.exists:
                    continue
                mine = [(r.key, r.value) for r in source.records]
                theirs = target.export_dataset(identity_id, dataset.name)
                problem = _difference(mine, list(theirs.pairs))
                with self._count_lock:
                    checked[0] += 1
                if problem:
                    self.progress.message(f"differs: {identity_id}/{dataset.name}: {problem}")
                    self._add(differ=1)

        self._each_identity(check, self._identities())
        self.progress.message(f"verify: {checked[0]} datasets compared, {self.stats.differ} differ")
        return self.stats.differ


def _difference(
    source: list[tuple[str, str | None]], target: list[tuple[str, str | None]]
) -> str | None:
    def counts(pairs: list[tuple[str, str | None]]) -> tuple[int, int]:
        live = sum(1 for _, v in pairs if v is not None)
        return live, len(pairs) - live

    if counts(source) != counts(target):
        (sl, st), (tl, tt) = counts(source), counts(target)
        return f"source has {sl} records + {st} removed, target {tl} + {tt}"
    if dataset_digest(source) != dataset_digest(target):
        return "same record counts but different keys or values (SHA-256 mismatch)"
    return None


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


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--identity-pool-id", required=True, help="the pool (REGION:GUID)")
    parser.add_argument("--region", required=True, help="the AWS region of the pool")
    parser.add_argument(
        "--source-endpoint-url",
        help="one URL serving Cognito Identity and Cognito Sync (default: AWS)",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", metavar="COGSYNC_JSON", help="the client config of the server")
    where.add_argument("--to-stack", metavar="STACK", help="a deployed server_schema stack")
    parser.add_argument(
        "--stack-region", metavar="REGION", help="region of --to-stack (default: --region)"
    )
    parser.add_argument(
        "--admin-credentials", metavar="ADMIN_JSON", help="the server's DIR/admin.json"
    )
    parser.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="resumable state (default: cogsync-migrate-<pool>.json in this directory)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="write nothing; print what would move"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="compare source and target afterwards (with --dry-run: only compare)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="identities at once (4)"
    )


def _target(args: argparse.Namespace) -> Target:
    if args.to_stack:
        if args.admin_credentials:
            raise ConfigError("--admin-credentials is for --to; --to-stack uses AWS credentials")
        return DynamoTarget(args.to_stack, region=args.stack_region or args.region)
    if not args.admin_credentials:
        raise ConfigError("--to needs --admin-credentials DIR/admin.json of that server")
    return ServerTarget(args.to, args.admin_credentials)


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


if __name__ == "__main__":
    sys.exit(main())
