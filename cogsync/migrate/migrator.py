"""One run of `cogsync migrate`: `Migrator` copies (or verifies) a source into a target.

The run lists every identity of the pool, then for each (``concurrency`` at a time) lists
its datasets and copies each one's records changed since the checkpointed sync count (all
of them the first time) in one idempotent import; datasets deleted at the source become
tombstones. Into a target with its own identity service (`DeveloperLoginTarget`), the
developer user ids of every identity with a developer login (``LookupDeveloperIdentity``)
are linked there too, before the identity counts as done. A dry run writes nothing and says
what would move. Verification compares every source dataset with the target (record counts
and `dataset_digest`) and every identity's developer logins. Progress is a rich bar
on a terminal and log lines otherwise.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TextIO

from cogsync._progress_display import ProgressDisplay
from cogsync.exceptions import LimitExceededError, UsageError
from cogsync.limits import record_size
from cogsync.migrate.checkpoint import Checkpoint
from cogsync.migrate.source import CognitoSyncSource, SourceRecords, SyncCountGone
from cogsync.migrate.target import DeveloperLoginTarget, Target

__all__ = ["MigrationStats", "Migrator", "dataset_digest"]


@dataclass
class MigrationStats:
    """Counters of one run, for progress lines and the summary."""

    identities_total: int = 0
    identities: int = 0
    datasets: int = 0
    records: int = 0
    bytes: int = 0
    skipped: int = 0
    logins: int = 0
    errors: int = 0
    differ: int = 0
    started: float = 0.0

    def line(self) -> str:
        """One line: what has been done so far."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return (
            f"identities {self.identities}/{self.identities_total}, datasets {self.datasets}, "
            f"records {self.records}, bytes {self.bytes}, developer logins {self.logins}, "
            f"skipped {self.skipped}, errors {self.errors} "
            f"({elapsed:.1f} s, {self.records / elapsed:.0f} records/s)"
        )


def dataset_digest(pairs: list[tuple[str, str | None]] | tuple[tuple[str, str | None], ...]) -> str:
    """SHA-256 over a dataset's (key, value) pairs sorted by key; null values included."""
    text = json.dumps(sorted(pairs), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Progress:
    """The run's progress: a rich bar on a terminal, plain log lines otherwise."""

    def __init__(self, stats: MigrationStats, out: TextIO) -> None:
        self.stats = stats
        self.display = ProgressDisplay(out)

    def message(self, text: str) -> None:
        self.display.message(text)

    def tick(self, *, force: bool = False) -> None:
        stats = self.stats
        detail = stats.line()
        if self.display.tty:  # the bar counts identities; the line says the rest
            detail = detail.split(", ", 1)[1]
        self.display.update(
            "migrate", stats.identities, stats.identities_total, detail, force=force
        )

    def close(self) -> None:
        self.display.close()


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
        self._provider_noted = False

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
            self.progress.tick(force=True)
        finally:
            self.progress.close()
            self.checkpoint.save(force=True)
        if not self.dry_run and self.stats.errors == 0:
            self.checkpoint.finish_run()
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
        ok.append(self._migrate_logins(identity_id))
        if not self.dry_run and all(ok):  # a failed dataset is retried by the next run
            self.checkpoint.mark_identity_done(identity_id)
        self._add(identities=1)

    def _login_target(self) -> DeveloperLoginTarget | None:
        """The target if it takes developer logins and the pool has a developer provider."""
        if self.source.developer_provider() is None:
            return None
        return self.target if isinstance(self.target, DeveloperLoginTarget) else None

    def _developer_users(self, identity_id: str) -> list[str]:
        provider = self.source.developer_provider()
        if provider is None or provider not in self.source.identity_logins.get(identity_id, ()):
            return []
        return self.source.developer_users(identity_id)

    def _migrate_logins(self, identity_id: str) -> bool:
        """Link the identity's developer users on the target; False if refused (reported)."""
        target = self._login_target()
        users = self._developer_users(identity_id) if target is not None else []
        if target is None or not users:
            return True
        if self.dry_run:
            self.progress.message(f"would link {len(users)} developer logins to {identity_id}")
        else:
            try:
                provider = target.import_developer_logins(identity_id, users)
            except UsageError as exc:
                self.progress.message(f"error: developer logins of {identity_id}: {exc}")
                self._add(errors=1)
                return False
            self._note_provider(provider)
        self._add(logins=len(users))
        return True

    def _note_provider(self, provider: str) -> None:
        with self._count_lock:
            if self._provider_noted:
                return
            self._provider_noted = True
        source = self.source.developer_provider()
        self.progress.message(
            f"developer logins of {source} are linked as {provider} on the target"
            + ("" if provider == source else " (its --developer-provider): the backend uses it")
        )

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
            self._verify_logins(identity_id)
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

        try:
            self._each_identity(check, self._identities())
        finally:
            self.progress.close()
        self.progress.message(f"verify: {checked[0]} datasets compared, {self.stats.differ} differ")
        return self.stats.differ

    def _verify_logins(self, identity_id: str) -> None:
        target = self._login_target()
        if target is None:
            return
        mine = self._developer_users(identity_id)
        theirs = target.export_developer_logins(identity_id)
        if mine != theirs:
            missing, extra = sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine))
            self.progress.message(
                f"differs: developer logins of {identity_id}: {len(missing)} missing on the "
                f"target, {len(extra)} only on the target"
            )
            self._add(differ=1)


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
