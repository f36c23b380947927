"""Generated GraphQL operations never crash SyncService.execute.

Every query and mutation hypothesis-graphql derives from the schema (valid ones, and ones
with one schema violation) must come back as an AppSync-shaped dict with data or typed
errors, never an exception and never an ``InternalFailure``.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import graphql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema

from cogsync.server.resolvers import SyncService
from cogsync.server.schema import format_datetime, load_schema
from cogsync.server.storage import ServerStorage

IDENTITY = "us-east-1:fuzz"
DATETIMES = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda value: graphql.StringValueNode(value=format_datetime(value)))
SCALARS = {"AWSDateTime": DATETIMES}
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def service() -> Iterator[SyncService]:
    with tempfile.TemporaryDirectory() as folder:
        svc = SyncService(ServerStorage(Path(folder) / "fuzz.db"))
        yield svc
        svc.close()
        svc.storage.close()


def check(response: Any) -> None:
    assert isinstance(response, dict)
    assert set(response) <= {"data", "errors"} and "data" in response
    errors = response.get("errors", [])
    assert response["data"] is not None or errors
    for error in errors:
        assert error["errorType"] != "InternalFailure", error
        assert isinstance(error["message"], str) and error["message"]


@FUZZ
@given(query=from_schema(load_schema(), custom_scalars=SCALARS))
def test_valid_operations_answer_data_or_typed_errors(service: SyncService, query: str) -> None:
    check(asyncio.run(service.execute(IDENTITY, query, None, None)))


@FUZZ
@given(query=from_schema(load_schema(), custom_scalars=SCALARS, mode=Mode.NEGATIVE))
def test_invalid_operations_answer_typed_errors(service: SyncService, query: str) -> None:
    response = asyncio.run(service.execute(IDENTITY, query, None, None))
    check(response)
    assert response["data"] is None
    assert response["errors"][0]["errorType"] in {"ValidationError", "BadRequestException"}


@FUZZ
@given(
    name=st.text(max_size=140),
    key=st.text(max_size=140),
    value=st.one_of(st.none(), st.text(max_size=50)),
    count=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    token=st.one_of(st.none(), st.text(max_size=40)),
)
def test_arbitrary_variables_answer_data_or_typed_errors(
    service: SyncService, name: str, key: str, value: str | None, count: int, token: str | None
) -> None:
    push = """mutation($i: PushRecordsInput!) {
      pushRecords(input: $i) { syncCount records { key } }
    }"""
    patch = {"op": "REPLACE", "key": key, "value": value, "syncCount": count}
    variables = {
        "i": {
            "datasetName": name,
            "clientRequestId": f"{name}/{key}/{count}",
            "deviceId": "fuzz",
            "protocolVersion": 1,
            "records": [patch],
        }
    }
    check(asyncio.run(service.execute(IDENTITY, push, variables, None)))
    pull = """query($n: String!, $c: Int!, $t: String) {
      listRecords(datasetName: $n, lastSyncCount: $c, nextToken: $t) {
        syncCount records { key value }
      }
    }"""
    check(asyncio.run(service.execute(IDENTITY, pull, {"n": name, "c": count, "t": token}, None)))
