"""Sync status: what a client knows about its connection and each dataset's sync state.

`StatusBoard` keeps the fields that live in memory (online, running syncs, the last sync
and its error) and the counts last read from the store; it tells its listeners whenever a
field changes. `ClientStatus` and `DatasetStatus` are the frozen snapshots apps read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from cogsync.events import Listeners
from cogsync.exceptions import CogsyncError
from cogsync.models import utcnow

__all__ = ["ClientStatus", "DatasetStatus", "StatusBoard"]


@dataclass(frozen=True, slots=True)
class DatasetStatus:
    """One dataset's sync state.

    Attributes:
        pending_changes: local records changed and not yet synced (dirty records).
        syncing: a sync of the dataset is running.
        last_synced_at: when this client last synced it successfully (None: not yet).
        sync_count: the server sync count the local copy is up to date with.
        last_error: the error of the last sync if it failed, else None.
    """

    pending_changes: int = 0
    syncing: bool = False
    last_synced_at: datetime | None = None
    sync_count: int = 0
    last_error: CogsyncError | None = None


@dataclass(frozen=True, slots=True)
class ClientStatus:
    """A client's sync state.

    Attributes:
        online: whether the server answered the last attempt (None until known).
        auto_sync: background sync is running (`start_auto_sync`).
        datasets: name -> `DatasetStatus`, for every dataset kept on this device.
    """

    online: bool | None = None
    auto_sync: bool = False
    datasets: Mapping[str, DatasetStatus] = field(default_factory=dict)


class StatusBoard:
    """The live status fields of one client; ``listeners`` hear every change."""

    def __init__(self) -> None:
        self.listeners: Listeners[ClientStatus] = Listeners()
        self._online: bool | None = None
        self._auto_sync = False
        self._datasets: dict[str, DatasetStatus] = {}

    @property
    def online(self) -> bool | None:
        """Whether the server answered last time (None until known)."""
        return self._online

    def snapshot(self, counts: Mapping[str, tuple[int, int]] | None = None) -> ClientStatus:
        """The status now; ``counts`` (name -> (pending, sync_count)) fresh from the store
        replaces the cached counts and names the datasets to report."""
        if counts is not None:
            for name, (pending, sync_count) in counts.items():
                self._update(name, notify=False, pending_changes=pending, sync_count=sync_count)
            datasets = {name: self._datasets[name] for name in sorted(counts)}
        else:
            datasets = dict(sorted(self._datasets.items()))
        return ClientStatus(self._online, self._auto_sync, MappingProxyType(datasets))

    def dataset(self, name: str) -> DatasetStatus:
        """The cached status of dataset ``name``."""
        return self._datasets.get(name, DatasetStatus())

    def set_online(self, online: bool) -> None:
        """Record whether the server answered."""
        if self._online is not online:
            self._online = online
            self._notify()

    def set_auto_sync(self, running: bool) -> None:
        """Record whether background sync runs."""
        if self._auto_sync is not running:
            self._auto_sync = running
            self._notify()

    def set_counts(self, name: str, pending: int, sync_count: int) -> None:
        """Record counts read from the store."""
        self._update(name, pending_changes=pending, sync_count=sync_count)

    def sync_started(self, name: str) -> None:
        """A sync of ``name`` began."""
        self._update(name, syncing=True)

    def sync_succeeded(self, name: str) -> None:
        """A sync of ``name`` ended well (the server answered)."""
        self._update(name, syncing=False, last_synced_at=utcnow(), last_error=None)
        self.set_online(True)

    def sync_failed(self, name: str, error: CogsyncError | None, *, online: bool | None) -> None:
        """A sync of ``name`` ended in ``error``; ``online``: whether the server answered
        (None: the failure says nothing about it)."""
        self._update(name, syncing=False, last_error=error)
        if online is not None:
            self.set_online(online)

    def forget(self, name: str) -> None:
        """Drop what is known of ``name`` (the dataset is gone)."""
        if self._datasets.pop(name, None) is not None:
            self._notify()

    def _update(self, name: str, *, notify: bool = True, **fields: object) -> None:
        before = self._datasets.get(name, DatasetStatus())
        after = replace(before, **fields)  # type: ignore[arg-type]
        if after != before or name not in self._datasets:
            self._datasets[name] = after
            if notify:
                self._notify()

    def _notify(self) -> None:
        if self.listeners:
            self.listeners.emit(self.snapshot())
