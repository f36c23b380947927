"""`cogsync.merge_json`: the three-way merge of JSON object values, by hand and by property."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cogsync
from cogsync.exceptions import ConflictError, UsageError
from cogsync.models import Conflict, Record, Resolution

T1 = datetime(2026, 1, 1, 10, tzinfo=UTC)
T2 = datetime(2026, 1, 1, 11, tzinfo=UTC)


def conflict(base: Any, local: Any, remote: Any, *, known: bool = True) -> Conflict:
    """A conflict on key "k" whose versions hold these JSON values (None: absent)."""

    def text(value: Any) -> str | None:
        return None if value is None else json.dumps(value)

    return Conflict(
        "k",
        Record("k", text(local), 1, T2, "dev-1", T2, True, 2),
        Record("k", text(remote), 3, T1, "dev-2", T1),
        Record("k", text(base), 1) if known else None,
    )


class Spy:
    """A fallback that records what it was asked and answers with ``answer(conflict)``."""

    def __init__(self, answer: Any = None) -> None:
        self.asked: list[Conflict] = []
        self.answer = answer or (lambda c: c.resolve_with_local_record())

    def __call__(self, dataset_name: str, conflicts: list[Conflict]) -> list[Resolution]:
        self.asked.extend(conflicts)
        return [self.answer(c) for c in conflicts]


def merged(resolution: Resolution, c: Conflict) -> Any:
    value = resolution.value
    return None if value is None else json.loads(value)


def test_changes_to_different_keys_are_both_kept_without_the_fallback() -> None:
    spy = Spy()
    c = conflict({"a": 1, "b": 2, "c": 3}, {"a": 10, "b": 2, "c": 3}, {"a": 1, "b": 2, "d": 4})
    (res,) = cogsync.merge_json(on_key_conflict=spy)("ds", [c])
    assert merged(res, c) == {"a": 10, "b": 2, "d": 4}
    assert res.source == "value" and spy.asked == []


def test_a_key_changed_on_both_sides_goes_to_the_fallback_alone() -> None:
    spy = Spy(lambda c: c.resolve_with_remote_record())
    c = conflict({"a": 1, "b": 2}, {"a": 10, "b": 20}, {"a": 11, "b": 2, "n": {"x": 1}})
    (res,) = cogsync.merge_json(on_key_conflict=spy)("ds", [c])
    (asked,) = spy.asked
    assert (asked.key, asked.path) == ("k", ("a",))
    assert (asked.local.value, asked.remote.value) == ("10", "11")
    assert asked.base is not None and asked.base.value == "1"
    assert asked.local.device_last_modified_date == T2  # the record's metadata is kept
    assert merged(res, c) == {"a": 11, "b": 20, "n": {"x": 1}}


def test_nested_objects_merge_recursively_and_name_the_path() -> None:
    spy = Spy(lambda c: c.resolve_with_value(None))  # drop the member
    base = {"ui": {"theme": "dark", "size": 1}}
    c = conflict(base, {"ui": {"theme": "light", "size": 2}}, {"ui": {"theme": "blue", "size": 1}})
    (res,) = cogsync.merge_json(on_key_conflict=spy)("ds", [c])
    assert [a.path for a in spy.asked] == [("ui", "theme")]
    assert merged(res, c) == {"ui": {"size": 2}}


def test_default_fallback_is_last_writer_wins() -> None:
    c = conflict({"a": 1}, {"a": 2}, {"a": 3})  # local edited later (T2)
    (res,) = cogsync.merge_json("ds", [c])
    assert res == c.resolve_with_local_record()


def test_values_that_are_not_objects_or_whose_base_is_unknown_go_whole_to_the_fallback() -> None:
    for c in (conflict(1, 2, 3), conflict({"a": 1}, {"a": 2}, {"b": 2}, known=False)):
        spy = Spy()
        assert cogsync.merge_json(on_key_conflict=spy)("ds", [c]) == [c.resolve_with_local_record()]
        assert spy.asked == [c]


def test_removal_on_one_side_is_taken_when_the_other_did_not_change() -> None:
    c = conflict({"a": 1}, None, {"a": 1})
    assert cogsync.merge_json("ds", [c]) == [c.resolve_with_local_record()]


def test_fallback_answering_text_that_is_not_json_is_refused() -> None:
    bad = cogsync.merge_json(on_key_conflict=Spy(lambda c: c.resolve_with_value("not json")))
    with pytest.raises(ConflictError, match="not JSON"):
        bad("ds", [conflict({"a": 1}, {"a": 2}, {"a": 3})])


def test_wrong_calls_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        cogsync.merge_json("ds", [], on_key_conflict=Spy())  # type: ignore[call-overload]
    with pytest.raises(UsageError):
        cogsync.merge_json()  # type: ignore[call-overload]


# ---- properties -------------------------------------------------------------------------
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
objects = st.dictionaries(st.text(max_size=4), json_values, max_size=6)


def edit(draw: st.DrawFn, base: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """``base`` with each of ``keys`` changed, added or removed."""
    result = dict(base)
    for key in keys:
        if key in result and draw(st.booleans()):
            del result[key]
        else:
            result[key] = draw(json_values.filter(lambda v, k=key: v != base.get(k, object())))
    return result


@st.composite
def disjoint_edits(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    base = draw(objects)
    keys = draw(st.lists(st.text(max_size=4), unique=True, max_size=6))
    split = draw(st.integers(0, len(keys)))
    return base, edit(draw, base, keys[:split]), edit(draw, base, keys[split:])


@given(disjoint_edits())
def test_every_change_to_different_keys_is_kept(
    case: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
) -> None:
    base, local, remote = case
    spy = Spy()
    c = conflict(base, local, remote)
    (res,) = cogsync.merge_json(on_key_conflict=spy)("ds", [c])
    expected = dict(local)
    for key in set(base) | set(remote):
        if json.dumps(remote.get(key, "<absent>")) != json.dumps(base.get(key, "<absent>")):
            if key in remote:
                expected[key] = remote[key]
            else:
                expected.pop(key, None)
    assert merged(res, c) == expected
    assert spy.asked == []


@given(objects, objects, objects)
def test_merging_is_deterministic(
    base: dict[str, Any], local: dict[str, Any], remote: dict[str, Any]
) -> None:
    c = conflict(base, local, remote)
    assert cogsync.merge_json("ds", [c]) == cogsync.merge_json("ds", [c])


@given(objects, objects)
def test_when_only_one_side_changed_the_result_is_that_sides_value(
    base: dict[str, Any], changed: dict[str, Any]
) -> None:
    only_remote = conflict(base, base, changed)
    (res,) = cogsync.merge_json(on_key_conflict=Spy())("ds", [only_remote])
    assert res.value == only_remote.remote.value
    only_local = conflict(base, changed, base)
    (res,) = cogsync.merge_json(on_key_conflict=Spy())("ds", [only_local])
    assert res.value == only_local.local.value
