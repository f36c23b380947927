"""Operator hooks of `cogsync serve`: the sync trigger and the change-stream export.

The successors of Cognito Events and Cognito Streams:

* a **sync trigger** is a callable ``(identity_id, dataset_name, patches) -> patches`` that
  sees every update batch before it is applied. It returns the patches to apply (the same,
  or modified), or raises `SyncRejected` to refuse the batch; the client then gets an
  ``InvalidParameterException`` carrying the trigger's reason and nothing is applied.
  It runs inside the storage transaction on the storage thread, so it must be quick and
  must not call back into the server.
* the **change stream** is the ordered change log of `ServerStorage.read_changes`;
  `export_changes_jsonl` writes it as JSON lines for other systems.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from cogsync.exceptions import UsageError
from cogsync.models import RecordPatch

if TYPE_CHECKING:
    from cogsync.server.storage import ServerStorage

__all__ = ["ServerHooks", "SyncRejected", "SyncTrigger", "export_changes_jsonl"]

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


def export_changes_jsonl(
    storage: ServerStorage, out: TextIO, *, after_seq: int = 0, batch: int = 1000
) -> int:
    """Write every change after ``after_seq`` to ``out``, one JSON object a line.

    Returns the sequence number of the last change written (``after_seq`` if none), to be
    passed as ``after_seq`` next time to continue where this export stopped.
    """
    last = after_seq
    while True:
        changes = storage.read_changes(after_seq=last, limit=batch)
        for change in changes:
            out.write(json.dumps(change.to_json(), separators=(",", ":")) + "\n")
            last = change.seq
        if len(changes) < batch:
            return last
