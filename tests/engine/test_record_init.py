"""`Record`'s own __init__ (faster than the dataclass's) keeps the dataclass's contract."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime

import pytest

from cogsync.models import Record

T = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_signature_is_the_fields_with_their_defaults() -> None:
    params = list(inspect.signature(Record).parameters.values())
    fields = dataclasses.fields(Record)
    assert [p.name for p in params] == [f.name for f in fields]
    for param, field in zip(params, fields, strict=True):
        expected = (
            inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        )
        assert param.default == expected, field.name


def test_every_field_is_set_by_position_and_by_name() -> None:
    values = ("k", "v", 7, T, "device", T.replace(year=2025), True, 9)
    names = [f.name for f in dataclasses.fields(Record)]
    for record in (Record(*values), Record(**dict(zip(names, values, strict=True)))):
        assert dataclasses.astuple(record) == values
    bare = Record("k", None)
    assert dataclasses.astuple(bare) == ("k", None, 0, None, None, None, False, 0)
    assert dataclasses.replace(bare, dirty=True, revision=3) == Record(
        "k", None, dirty=True, revision=3
    )


def test_stays_frozen_and_hashable() -> None:
    record = Record("k", "v", 1, T)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.value = "w"  # type: ignore[misc]
    assert hash(record) == hash(Record("k", "v", 1, T)) and record != Record("k", "v", 2, T)
    with pytest.raises(TypeError):
        Record("k")  # type: ignore[call-arg]
