"""Fuzz over the wire: schema-generated operations, signed and POSTed to a real server,
never get a 5xx, and every answer is AppSync-shaped JSON."""

from __future__ import annotations

import json
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import graphql
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema
from server_wire import issue_credentials

from cogsync.server.runner import EmbeddedServer
from cogsync.server.schema import format_datetime, load_schema

SCALARS = {
    "AWSDateTime": st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ).map(lambda value: graphql.StringValueNode(value=format_datetime(value)))
}
WIRE = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def wire() -> Iterator[tuple[EmbeddedServer, Credentials]]:
    with tempfile.TemporaryDirectory() as folder, EmbeddedServer(Path(folder), port=0) as srv:
        _, creds = issue_credentials(srv)
        yield srv, creds


def post(srv: EmbeddedServer, creds: Credentials, body: bytes) -> tuple[int, Any]:
    url = srv.config.graphql_url
    request = AWSRequest("POST", url, data=body, headers={"content-type": "application/json"})
    SigV4Auth(creds, "appsync", srv.config.region).add_auth(request)
    sent = urllib.request.Request(url, data=body, headers=dict(request.headers), method="POST")
    try:
        with urllib.request.urlopen(sent, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def check(status: int, answer: Any) -> None:
    assert status < 500, answer
    assert isinstance(answer, dict) and set(answer) <= {"data", "errors"}
    for error in answer.get("errors", []):
        assert error["errorType"] != "InternalFailure", error


@WIRE
@given(query=from_schema(load_schema(), custom_scalars=SCALARS))
def test_valid_operations_over_http(wire: tuple[EmbeddedServer, Credentials], query: str) -> None:
    srv, creds = wire
    check(*post(srv, creds, json.dumps({"query": query}).encode()))


@WIRE
@given(query=from_schema(load_schema(), custom_scalars=SCALARS, mode=Mode.NEGATIVE))
def test_invalid_operations_over_http(wire: tuple[EmbeddedServer, Credentials], query: str) -> None:
    srv, creds = wire
    status, answer = post(srv, creds, json.dumps({"query": query}).encode())
    check(status, answer)
    assert answer.get("errors")


@WIRE
@given(body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_random_bodies_over_http(wire: tuple[EmbeddedServer, Credentials], body: bytes) -> None:
    srv, creds = wire
    status, answer = post(srv, creds, body)
    check(status, answer)
