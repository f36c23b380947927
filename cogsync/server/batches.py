"""Validation of an update batch before `ServerStorage` applies it.

A batch is checked whole before anything is written: every key and value against the
limits, one patch per key, sync counts that are non-negative integers, and each patch's
sync count against the record's current one (the optimistic concurrency check).
"""

from __future__ import annotations

from collections.abc import Sequence

from cogsync.exceptions import ConflictError, InvalidValueError
from cogsync.limits import Limits, validate_key, validate_value
from cogsync.models import PatchOp, RecordPatch
from cogsync.server.wire import InvalidRequestError

__all__ = ["check_sync_count", "validated_batch"]


def validated_batch(batch: Sequence[RecordPatch], limits: Limits) -> dict[str, RecordPatch]:
    """The patches by key, REMOVE patches stripped of values; refuse an invalid batch.

    Raises:
        InvalidKeyError, InvalidValueError, InvalidRequestError: a bad patch.
        TypeError: an element is not a `RecordPatch` (a sync trigger returned garbage).
    """
    changes: dict[str, RecordPatch] = {}
    for patch in batch:
        if not isinstance(patch, RecordPatch):
            raise TypeError(f"a sync trigger returned {type(patch).__name__}, not RecordPatch")
        key = validate_key(patch.key, limits)
        if key in changes:
            raise InvalidRequestError(
                f"record key {key[:40]!r} appears twice in one push: send one patch per key"
            )
        if isinstance(patch.sync_count, bool) or not isinstance(patch.sync_count, int):
            raise InvalidRequestError(f"syncCount of record {key[:40]!r} must be an integer")
        if patch.sync_count < 0:
            raise InvalidRequestError(
                f"syncCount of record {key[:40]!r} is negative: send 0 for a new record"
            )
        if PatchOp(patch.op) is PatchOp.REMOVE:
            patch = RecordPatch(
                PatchOp.REMOVE, key, None, patch.sync_count, patch.device_last_modified_date
            )
        elif patch.value is None:
            raise InvalidValueError(
                f"REPLACE of record {key[:40]!r} has no value: send a string, or use REMOVE"
            )
        else:
            validate_value(patch.value)
        changes[key] = patch
    return changes


def check_sync_count(name: str, patch: RecordPatch, stored: tuple[object, int] | None) -> None:
    """Refuse ``patch`` unless it names the record's current sync count.

    ``stored`` is the record's ``(value or size, sync_count)``, None if never written; 0 is also
    accepted for a tombstone (writing over it as a new record).

    Raises:
        ConflictError: naming the key, the current and the expected sync count.
    """
    current = 0 if stored is None else stored[1]
    if patch.sync_count == current:
        return
    if stored is not None and stored[0] is None and patch.sync_count == 0:
        return
    raise ConflictError(
        f"record {patch.key[:40]!r} of dataset {name!r} is at syncCount {current} on the "
        f"server but the push expected {patch.sync_count}; nothing was applied: pull the "
        "dataset, resolve the conflict and push again",
        key=patch.key,
        current=current,
        expected=patch.sync_count,
    )
