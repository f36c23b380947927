"""Operator hooks of `cogsync serve`: the sync trigger.

The successor of Cognito Events: a **sync trigger** is a callable
``(identity_id, dataset_name, patches) -> patches`` that sees every update batch before it
is applied. It returns the patches to apply (the same, or modified), or raises
`SyncRejected` to refuse the batch; the client then gets an ``InvalidParameterException``
carrying the trigger's reason and nothing is applied. It runs inside the storage
transaction on the storage thread, so it must be quick and must not call back into the
server.

The successor of Cognito Streams, the change stream, is `cogsync.server.changes`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cogsync.exceptions import UsageError
from cogsync.models import RecordPatch

__all__ = ["ServerHooks", "SyncRejected", "SyncTrigger"]

SyncTrigger = Callable[[str, str, list[RecordPatch]], Sequence[RecordPatch]]
"""``(identity_id, dataset_name, patches) -> patches to apply``; raise `SyncRejected` to refuse."""


class SyncRejected(UsageError):
    """Raised by a sync trigger to refuse a batch; the message reaches the client as is."""


@dataclass(frozen=True, slots=True)
class ServerHooks:
    """The operator's hooks for a `SyncService`.

    Attributes:
        sync_trigger: called with every new update batch (not with retried request ids).
    """

    sync_trigger: SyncTrigger | None = None
