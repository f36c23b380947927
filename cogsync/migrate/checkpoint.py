"""The resumable state of `cogsync migrate`: `Checkpoint`, one JSON file replaced atomically.

It records each dataset's copied sync count and the identities finished by the current run,
so a killed run started again skips finished identities and re-imports at most the datasets
in flight, and a later run copies only what changed since.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from cogsync._atomic_file import write_atomically
from cogsync.exceptions import ConfigError

__all__ = ["Checkpoint"]

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
            write_atomically(self.path, text)
            self._dirty = False
            self._saved_at = time.monotonic()
