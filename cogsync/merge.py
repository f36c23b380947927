"""`merge_json`: a three-way, key-by-key merge resolver for records holding JSON objects.

A conflict knows three versions of a record: this device's (``local``), the server's
(``remote``) and the one both started from (``base``, see `Conflict.base`). The merge:

1. If one side still equals the base, the other side's change is taken as is (for any
   value, JSON or not, removals included).
2. If both values are JSON objects and the base is known, they are merged member by
   member (nested objects recursively): a member changed, added or removed on one side
   only takes that change; one changed identically on both sides is kept.
3. A member changed differently on both sides is settled by ``on_key_conflict``, called
   with a `Conflict` of the same record whose ``path`` names the member and whose
   versions' values are that member's JSON (None where absent). It returns one
   `Resolution` (value: JSON text, or None to drop the member).
4. Anything else (not JSON objects, or an unknown base) goes to ``on_key_conflict`` whole.

Arrays and scalars are never merged inside: they are members like any other. The merged
object keeps the local member order, then the remote-only members; it is written compactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any, overload

from cogsync.engine.conflicts import check_resolutions, last_writer_wins
from cogsync.exceptions import ConflictError, UsageError
from cogsync.models import Conflict, Record, Resolution

__all__ = ["Resolver", "merge_json", "same_json"]

Resolver = Callable[[str, list[Conflict]], list[Resolution]]
"""A plain (not async) ``on_conflict(dataset_name, conflicts) -> list[Resolution]``."""

_MISSING: Any = object()  # a member absent from one version


def _parse(text: str | None) -> Any:
    """The JSON value of ``text``; _MISSING for None or text that is not JSON."""
    if text is None:
        return _MISSING
    try:
        return json.loads(text)
    except ValueError:
        return _MISSING


def _canon(value: Any) -> str | None:
    """A canonical text of a JSON value: equal texts mean equal values (1 and 1.0 differ)."""
    if value is _MISSING:
        return None
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _dump(value: Any) -> str | None:
    if value is _MISSING:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def same_json(a: str | None, b: str | None) -> bool:
    """Whether two record values are the same: equal JSON values, or equal text otherwise."""
    if a == b:
        return True
    pa, pb = _parse(a), _parse(b)
    return pa is not _MISSING and pb is not _MISSING and _canon(pa) == _canon(pb)


class _JsonMerge:
    """The resolver `merge_json` returns; ``fallback`` settles what cannot be merged."""

    def __init__(self, fallback: Resolver) -> None:
        self._fallback = fallback

    def __call__(self, dataset_name: str, conflicts: list[Conflict]) -> list[Resolution]:
        return [self._resolve(dataset_name, c) for c in conflicts]

    def _ask(self, dataset_name: str, conflict: Conflict) -> Resolution:
        answer = self._fallback(dataset_name, [conflict])
        return check_resolutions(dataset_name, [conflict], answer)[conflict.key]

    def _resolve(self, dataset_name: str, conflict: Conflict) -> Resolution:
        local, remote = conflict.local.value, conflict.remote.value
        if conflict.base is None:
            return self._ask(dataset_name, conflict)
        base = conflict.base.value
        if same_json(local, base):
            return conflict.resolve_with_remote_record()
        if same_json(remote, base):
            return conflict.resolve_with_local_record()
        ours, theirs = _parse(local), _parse(remote)
        if not (isinstance(ours, dict) and isinstance(theirs, dict)):
            return self._ask(dataset_name, conflict)
        start = _parse(base)
        merged = self._merge(
            dataset_name, conflict, start if isinstance(start, dict) else {}, ours, theirs, ()
        )
        if _canon(merged) == _canon(theirs):
            return conflict.resolve_with_remote_record()
        if _canon(merged) == _canon(ours):
            return conflict.resolve_with_local_record()
        return conflict.resolve_with_value(_dump(merged))

    def _merge(
        self,
        dataset_name: str,
        conflict: Conflict,
        base: dict[str, Any],
        ours: dict[str, Any],
        theirs: dict[str, Any],
        path: tuple[str, ...],
    ) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for key in [*ours, *(k for k in theirs if k not in ours)]:
            mine, other = ours.get(key, _MISSING), theirs.get(key, _MISSING)
            was = base.get(key, _MISSING)
            if _canon(mine) == _canon(other) or _canon(other) == _canon(was):
                value = mine
            elif _canon(mine) == _canon(was):
                value = other
            elif isinstance(mine, dict) and isinstance(other, dict):
                start = was if isinstance(was, dict) else {}
                value = self._merge(dataset_name, conflict, start, mine, other, (*path, key))
            else:
                value = self._member(dataset_name, conflict, (*path, key), was, mine, other)
            if value is not _MISSING:
                merged[key] = value
        return merged

    def _member(
        self, dataset_name: str, conflict: Conflict, path: tuple[str, ...], *values: Any
    ) -> Any:
        """Ask the fallback about one member changed on both sides; its merged value."""
        was, mine, other = (_dump(v) for v in values)
        assert conflict.base is not None
        member = Conflict(
            conflict.key,
            replace(conflict.local, value=mine),
            replace(conflict.remote, value=other),
            Record(conflict.key, was, conflict.base.sync_count),
            path,
        )
        chosen = self._ask(dataset_name, member).value
        if chosen is None:
            return _MISSING
        value = _parse(chosen)
        if value is _MISSING:
            raise ConflictError(
                f"on_key_conflict for dataset {dataset_name!r} settled member {list(path)} of "
                f"key {conflict.key!r} with text that is not JSON: return JSON text, or None "
                "to drop the member",
                key=conflict.key,
            )
        return value


@overload
def merge_json(dataset_name: str, conflicts: list[Conflict]) -> list[Resolution]: ...


@overload
def merge_json(*, on_key_conflict: Resolver) -> Resolver: ...


def merge_json(
    dataset_name: str | None = None,
    conflicts: list[Conflict] | None = None,
    *,
    on_key_conflict: Resolver | None = None,
) -> list[Resolution] | Resolver:
    """Merge conflicting JSON object values member by member (a three-way merge).

    Use it directly as a resolver, ``synchronize(on_conflict=cogsync.merge_json)``
    (members changed on both sides go to `last_writer_wins`), or build one with another
    fallback: ``on_conflict=cogsync.merge_json(on_key_conflict=my_resolver)``. The fallback
    is a plain function called with one `Conflict` at a time: a member conflict (its
    ``path`` names the member) or a whole record that cannot be merged. See the module
    docstring for the rules.

    Raises:
        UsageError: called with both conflicts and ``on_key_conflict``, or with neither.
        ConflictError: the fallback answered wrongly (see `check_resolutions`).
    """
    if on_key_conflict is not None:
        if dataset_name is not None or conflicts is not None:
            raise UsageError(
                "merge_json takes either (dataset_name, conflicts) or on_key_conflict=...: "
                "call merge_json(on_key_conflict=f) to build a resolver, then pass that"
            )
        return _JsonMerge(on_key_conflict)
    if dataset_name is None or conflicts is None:
        raise UsageError(
            "merge_json is a resolver: pass it as on_conflict=cogsync.merge_json, or build "
            "one with merge_json(on_key_conflict=f)"
        )
    return _JsonMerge(last_writer_wins)(dataset_name, conflicts)
