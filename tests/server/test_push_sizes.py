"""A push checks its dataset's limits from record sizes SQLite measures, not from values.

`check_dataset_sizes` must answer exactly as `check_dataset_totals` (same totals, same
refusal), and the SQL sizes the server reads must be the UTF-8 sizes `record_size` counts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cogsync.exceptions import LimitExceededError
from cogsync.limits import Limits, check_dataset_sizes, check_dataset_totals, record_size
from cogsync.models import PatchOp, RecordPatch
from cogsync.server.storage import ServerStorage

IDENTITY = "us-east-1:aaaaaaaa-0000-0000-0000-000000000000"
# Any Unicode but lone surrogates (SQLite stores UTF-8, which cannot carry them).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
KEYS = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=6)
CHANGES = st.dictionaries(KEYS, st.none() | TEXT, max_size=8)
SMALL = Limits(max_records=6, max_dataset_bytes=60)


def _outcome(check, *args, **kw):  # type: ignore[no-untyped-def]
    try:
        return check(*args, **kw)
    except LimitExceededError as exc:
        return type(exc), exc.limit, exc.attempted, str(exc)


@given(current=CHANGES, changes=CHANGES, rest=st.integers(0, 3), extra=st.integers(0, 20))
def test_sizes_answer_exactly_as_values(
    current: dict[str, str | None], changes: dict[str, str | None], rest: int, extra: int
) -> None:
    sizes = {k: record_size(k, v) for k, v in current.items() if v is not None}
    kw = {"rest_count": rest, "rest_bytes": extra}
    expected = _outcome(check_dataset_totals, "ds", current, changes, SMALL, **kw)
    assert _outcome(check_dataset_sizes, "ds", sizes, changes, SMALL, **kw) == expected


def _patches(changes: dict[str, str | None], counts: dict[str, int]) -> list[RecordPatch]:
    return [
        RecordPatch(PatchOp.REPLACE if v is not None else PatchOp.REMOVE, k, v, counts.get(k, 0))
        for k, v in changes.items()
    ]


@settings(max_examples=60, deadline=None)
@given(first=CHANGES, second=CHANGES)
def test_a_push_is_refused_or_sized_as_the_values_say(
    first: dict[str, str | None], second: dict[str, str | None]
) -> None:
    with tempfile.TemporaryDirectory() as tmp, ServerStorage(Path(tmp) / "s.db", SMALL) as store:
        stored: dict[str, str | None] = {}
        counts: dict[str, int] = {}
        for n, changes in enumerate((first, second)):
            expected = _outcome(check_dataset_totals, "ds", stored, changes, SMALL)
            try:
                change = store.push_records(
                    IDENTITY, "ds", _patches(changes, counts),
                    client_request_id=f"r{n}", device_id="d",
                )  # fmt: skip
            except LimitExceededError as exc:
                assert (type(exc), exc.limit, exc.attempted, str(exc)) == expected
                continue
            assert isinstance(expected, tuple) and len(expected) == 2
            stored.update(changes)
            counts.update((r.key, r.sync_count) for r in change.records)
            (listed,) = store.list_datasets(IDENTITY).datasets
            assert (listed.record_count, listed.size_in_bytes) == expected
