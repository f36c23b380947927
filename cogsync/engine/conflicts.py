"""Conflict resolvers, and the check every resolver's answer goes through.

A resolver is ``on_conflict(dataset_name, conflicts) -> list[Resolution]`` (it may also
be a coroutine function when used through `cogsync.AsyncClient`). It must return exactly
one `Resolution` per conflict; `check_resolutions` raises `ConflictError` otherwise, so a
record is never dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from cogsync.exceptions import ConflictError
from cogsync.models import Conflict, Record, Resolution

__all__ = ["check_resolutions", "last_writer_wins", "local_wins", "remote_wins"]

_SOURCES = frozenset({"local", "remote", "value"})
_OLDEST = datetime.min.replace(tzinfo=UTC)


def _rank(record: Record) -> tuple[datetime, str]:
    return (record.device_last_modified_date or _OLDEST, record.last_modified_by or "")


def last_writer_wins(dataset_name: str, conflicts: list[Conflict]) -> list[Resolution]:
    """Keep the most recently edited version of each record (the default resolver).

    Versions are ordered by ``device_last_modified_date`` (a missing date counts as
    oldest); equal dates are ordered by ``last_modified_by`` (the writing device's id,
    compared as text, missing = empty); when both are equal the server's version wins,
    since it is already stored there and no push is needed.
    """
    return [
        c.resolve_with_local_record()
        if _rank(c.local) > _rank(c.remote)
        else c.resolve_with_remote_record()
        for c in conflicts
    ]


def remote_wins(dataset_name: str, conflicts: list[Conflict]) -> list[Resolution]:
    """Take the server's version of every conflicting record (drops the local edits)."""
    return [c.resolve_with_remote_record() for c in conflicts]


def local_wins(dataset_name: str, conflicts: list[Conflict]) -> list[Resolution]:
    """Keep this device's version of every conflicting record (pushed over the server's)."""
    return [c.resolve_with_local_record() for c in conflicts]


def check_resolutions(
    dataset_name: str, conflicts: Sequence[Conflict], answer: object
) -> dict[str, Resolution]:
    """Validate a resolver's ``answer`` and index it by key.

    Raises:
        ConflictError: the answer is not a list of `Resolution`, misses a conflict, names a
            key that is not in conflict, settles a key twice, or has an unknown source or a
            non-str value.
    """
    where = f"on_conflict for dataset {dataset_name!r}"
    if not isinstance(answer, list | tuple):
        raise ConflictError(
            f"{where} returned {type(answer).__name__}; return a list with one Resolution "
            "per conflict (conflict.resolve_with_local_record(), ...)"
        )
    expected = {c.key: c for c in conflicts}
    resolved: dict[str, Resolution] = {}
    for item in answer:
        if not isinstance(item, Resolution):
            raise ConflictError(
                f"{where} returned a {type(item).__name__} in its list; use "
                "conflict.resolve_with_local_record(), resolve_with_remote_record() or "
                "resolve_with_value(value)"
            )
        if item.key not in expected:
            raise ConflictError(
                f"{where} resolved key {item.key!r}, which is not in conflict; resolve only "
                "the keys of the conflicts it was given",
                key=item.key,
            )
        if item.key in resolved:
            raise ConflictError(
                f"{where} resolved key {item.key!r} twice; return one Resolution per conflict",
                key=item.key,
            )
        if item.source not in _SOURCES or not (item.value is None or isinstance(item.value, str)):
            raise ConflictError(
                f"{where} returned an invalid resolution for key {item.key!r} (source "
                f"{item.source!r}, value of type {type(item.value).__name__}); build it with "
                "the Conflict.resolve_with_* methods and a str or None value",
                key=item.key,
            )
        resolved[item.key] = item
    missing = [key for key in expected if key not in resolved]
    if missing:
        conflict = expected[missing[0]]
        raise ConflictError(
            f"{where} left {len(missing)} conflict(s) unresolved (first: key {missing[0]!r}); "
            "return one Resolution per conflict -- nothing was applied",
            key=missing[0],
            current=conflict.remote.sync_count,
            expected=conflict.local.sync_count,
        )
    return resolved
