"""`Projection` answers each event exactly as graphql-core executes the subscription."""

from __future__ import annotations

import json
from typing import Any

import pytest
from graphql import ExecutionResult, execute, parse, validate
from hypothesis import given, settings
from hypothesis import strategies as st

from cogsync.server.projection import Projection
from cogsync.server.schema import load_schema

SCHEMA = load_schema()
DOCUMENTS = [
    "subscription S($id: ID!) { onDatasetChanged(identityId: $id) {"
    " identityId datasetName syncCount deleted } }",
    'subscription { c: onDatasetChanged(identityId: "x") { __typename deleted n: datasetName'
    " ... on DatasetChange { syncCount identityId } ...F records { key value syncCount"
    " lastModifiedDate lastModifiedBy deviceLastModifiedDate } } }"
    " fragment F on DatasetChange { syncCount n: datasetName }",
    "subscription S($id: ID!, $skip: Boolean!, $with: Boolean = true) {"
    " onDatasetChanged(identityId: $id) { syncCount @skip(if: $skip)"
    " deleted @include(if: $with) datasetName @include(if: false) identityId @skip(if: false)"
    " records @include(if: $skip) { key value } } }",
]
VARIABLES: list[dict[str, Any]] = [
    {"id": "x"},
    {"id": "x", "skip": True},
    {"id": "x", "skip": False},
]

text = st.text(max_size=20)
records = st.lists(
    st.fixed_dictionaries(
        {
            "key": text,
            "value": st.none() | text,
            "syncCount": st.integers(0, 2**31 - 1),
            "lastModifiedDate": st.sampled_from(
                ["2024-05-01T10:00:00.000Z", "2024-05-01T10:00:00Z"]
            ),
            "lastModifiedBy": text,
            "deviceLastModifiedDate": st.none() | st.just("2024-05-01T10:00:00.000Z"),
        }
    ),
    max_size=3,
)
changes = st.fixed_dictionaries(
    {
        "identityId": text,
        "datasetName": text,
        "syncCount": st.integers(0, 2**31 - 1) | st.none(),  # None: graphql-core's error
        "deleted": st.booleans(),
        "records": st.none() | records,
    }
)


def graphql_core(document: str, variables: dict[str, Any], event: object) -> ExecutionResult:
    result = execute(SCHEMA, parse(document), root_value=event, variable_values=variables)
    assert isinstance(result, ExecutionResult)
    return result


def as_json(result: ExecutionResult) -> str:
    return json.dumps(
        {"data": result.data, "errors": [e.formatted for e in result.errors or []]},
        separators=(",", ":"),
    )


@pytest.mark.parametrize("document", DOCUMENTS)
def test_documents_are_valid(document: str) -> None:
    assert validate(SCHEMA, parse(document)) == []


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize("variables", VARIABLES)
@given(change=changes)
@settings(max_examples=40, deadline=None)
async def test_projection_answers_as_graphql_core(
    document: str, variables: dict[str, Any], change: dict[str, Any]
) -> None:
    if "$skip" in document and "skip" not in variables:
        return  # a required variable is missing: refused at subscription start
    event = {"onDatasetChanged": change}
    projection = Projection(SCHEMA, parse(document), variables, None)
    assert projection.resolved
    ours = await projection.result(event)
    assert as_json(ours) == as_json(graphql_core(document, variables, event))


async def test_an_event_graphql_core_refuses_gets_its_errors() -> None:
    event = {"onDatasetChanged": {"identityId": "i", "datasetName": "d", "syncCount": None}}
    projection = Projection(SCHEMA, parse(DOCUMENTS[0]), {"id": "i"}, None)
    result = await projection.result(event)
    assert result.data == {"onDatasetChanged": None}
    assert result.errors and "non-nullable" in result.errors[0].message
