"""A push's request body: the records encoded straight to bytes are the bytes a dict per
record gives (with orjson, or the standard library's escapes where orjson refuses)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
from hypothesis import given
from hypothesis import strategies as st

from cogsync.models import PatchOp, RecordPatch
from cogsync.remote.payloads import PushPatches, dumps_body

texts = st.text(max_size=40)  # any code point, lone surrogates included
moments = st.none() | st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
)
patches = st.lists(
    st.builds(
        RecordPatch,
        st.sampled_from(PatchOp),
        texts,
        st.none() | texts,
        st.integers(0, 2**31 - 1),
        moments,
    ),
    max_size=8,
)


@given(patches, texts)
def test_the_body_is_what_one_dict_per_record_gives(batch: list[RecordPatch], name: str) -> None:
    body = dumps_body(
        {"variables": {"input": {"datasetName": name, "records": PushPatches(batch)}}}
    )
    dicts = PushPatches.dicts(PushPatches(batch))  # what the standard library's encoder gets
    plain = {"variables": {"input": {"datasetName": name, "records": dicts}}}
    try:
        expected = orjson.dumps(plain)
    except orjson.JSONEncodeError:  # lone surrogates: the standard library's escapes
        expected = json.dumps(plain).encode("utf-8")
    assert body == expected
