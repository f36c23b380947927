"""The compiled path answers the client's documents exactly as graphql-core does.

Two `SyncService`s over two data files with the same clock, one answering the client's
documents by their compiled operations and one running every document through
graphql-core, get the same requests; their answers must encode to the same bytes
(unicode, nulls, tombstones, maximum sizes, every error, malformed variables). Also: the
document cache gives the remembered outcome and stays bounded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from graphql import strip_ignored_characters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cogsync.limits import Limits
from cogsync.models import PROTOCOL_VERSION, Record
from cogsync.remote.operations import LIST_DATASETS, LIST_RECORDS, PUSH_RECORDS, SERVER_INFO
from cogsync.server.bounds import ServerLimits
from cogsync.server.documents import CheckedDocument, DocumentCache
from cogsync.server.resolvers import SyncService
from cogsync.server.schema import load_schema
from cogsync.server.storage import ServerStorage

LIMITS = Limits(max_records=64, max_dataset_bytes=64 * 1024)
DOCUMENTS = {
    "raw": (LIST_RECORDS, PUSH_RECORDS, LIST_DATASETS),
    "stripped": tuple(
        strip_ignored_characters(d) for d in (LIST_RECORDS, PUSH_RECORDS, LIST_DATASETS)
    ),
}


class _Clock:
    """A server clock that moves 1.5 ms per call: the same times for both services."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1500)
        return self.now


class Pair:
    """A compiled and a graphql-core service over equal data; `same` compares answers."""

    def __init__(self, root: Path, server_limits: ServerLimits | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        extra: dict[str, Any] = {} if server_limits is None else {"server_limits": server_limits}
        self.services = [
            SyncService(
                ServerStorage(root / f"{name}.db", LIMITS, clock=_Clock()),
                compiled_documents=name == "compiled",
                **extra,
            )
            for name in ("compiled", "graphql")
        ]
        self.requests = 0

    def same(
        self, identity: str, query: str, variables: Any, operation_name: str | None = None
    ) -> dict[str, Any]:
        """Send one request to both services; assert identical answer bytes; return it."""
        answers = [
            self.loop.run_until_complete(s.execute(identity, query, variables, operation_name))
            for s in self.services
        ]
        compiled, graphql = answers
        assert orjson.dumps(compiled) == orjson.dumps(graphql)
        assert json.dumps(compiled) == json.dumps(graphql)
        self.requests += 1
        return compiled

    def storage_call(self, method: str, *args: Any, **kwargs: Any) -> None:
        for service in self.services:
            getattr(service.storage, method)(*args, **kwargs)

    def close(self) -> None:
        for service in self.services:
            service.close()
            service.storage.close()
        self.loop.close()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    services = Pair(tmp_path)
    yield services
    services.close()


def push_input(name: str, request: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "input": {
            "datasetName": name,
            "clientRequestId": request,
            "deviceId": "device-é-1",
            "protocolVersion": PROTOCOL_VERSION,
            "records": records,
        }
    }


def patch(key: str, value: str | None, count: int = 0, date: object = None) -> dict[str, Any]:
    return {
        "op": "REPLACE" if value is not None else "REMOVE",
        "key": key,
        "value": value,
        "syncCount": count,
        "deviceLastModifiedDate": date,
    }


def pull_all(pair: Pair, identity: str, name: str, since: int, limit: int | None, form: str) -> int:
    """Page through a dataset on both services; the number of pages."""
    list_records = DOCUMENTS[form][0]
    token, pages = None, 0
    while True:
        variables = {"datasetName": name, "lastSyncCount": since, "nextToken": token}
        if limit is not None:
            variables["limit"] = limit
        answer = pair.same(identity, list_records, variables)
        pages += 1
        if answer["data"] is None:
            return pages
        token = answer["data"]["listRecords"]["nextToken"]
        if token is None:
            return pages


def test_the_clients_documents_are_compiled_and_others_are_not() -> None:
    cache = DocumentCache(load_schema(), ServerLimits())
    for form in DOCUMENTS.values():
        for document in form:
            checked = cache.check(document)
            assert isinstance(checked, CheckedDocument) and checked.compiled is not None
    push = cache.check(PUSH_RECORDS)
    assert isinstance(push, CheckedDocument) and push.compiled is not None
    variables = push_input("d", "r", [patch("k", "v", 2, "2024-05-01T12:00:00.5+01:00")])
    coerced = push.compiled.arguments(variables, "PushRecords")
    when = datetime(2024, 5, 1, 11, 0, 0, 500000, tzinfo=UTC)
    assert coerced == {"input": {**variables["input"], "records": [patch("k", "v", 2, when)]}}
    variables["input"]["records"][0]["syncCount"] = 2**31  # graphql-core's to refuse
    assert push.compiled.arguments(variables, None) is None
    assert push.compiled.arguments(push_input("d", "r", []), "Other") is None
    other = cache.check(SERVER_INFO)
    assert isinstance(other, CheckedDocument) and other.compiled is None
    aliased = cache.check(LIST_DATASETS.replace("nextToken\n  }", "next: nextToken\n  }"))
    assert isinstance(aliased, CheckedDocument) and aliased.compiled is None


keys = st.text(min_size=1, max_size=40).filter(
    lambda k: 1 <= len(k.encode("utf-8", "surrogatepass")) <= 128
)
values = st.one_of(st.none(), st.text(max_size=300))
dates = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ).map(lambda d: d.isoformat(timespec="milliseconds").replace("+00:00", "Z")),
)
batches = st.lists(
    st.tuples(keys, values, dates), min_size=1, max_size=12, unique_by=lambda r: r[0]
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pushes=st.lists(batches, min_size=1, max_size=4),
    limit=st.one_of(st.none(), st.integers(1, 7)),
    form=st.sampled_from(sorted(DOCUMENTS)),
    delete=st.booleans(),
)
def test_pushes_and_pages_answer_the_same_bytes(
    pair: Pair,
    pushes: list[list[tuple[str, str | None, str | None]]],
    limit: int | None,
    form: str,
    delete: bool,
) -> None:
    identity = f"us-east-1:{pair.requests:08d}"
    counts: dict[str, int] = {}
    for number, batch in enumerate(pushes):
        records = [patch(k, v, counts.get(k, 0), d) for k, v, d in batch]
        answer = pair.same(identity, DOCUMENTS[form][1], push_input("data", f"r{number}", records))
        if answer["data"] is not None:
            for record in answer["data"]["pushRecords"]["records"]:
                counts[record["key"]] = record["syncCount"]
    pair.same(identity, DOCUMENTS[form][1], push_input("data", "r0", []))  # a replay
    if delete:
        pair.storage_call("delete_dataset", identity, "data", client_request_id="gone")
    for since in (0, 1):
        pull_all(pair, identity, "data", since, limit, form)
    pair.same(identity, DOCUMENTS[form][2], {"nextToken": None, "limit": limit})


def test_maximum_keys_values_and_pages_answer_the_same_bytes(pair: Pair) -> None:
    identity = "us-east-1:maximum"
    per_record = LIMITS.max_dataset_bytes // LIMITS.max_records  # key and value bytes
    value = "\x00\u00e9\U0001f600" * ((per_record - 128) // 7)  # 1 + 2 + 4 bytes
    value += "x" * (per_record - 128 - len(value.encode()))
    records = [
        patch("k" * 120 + f"{i:08d}", value, 0, "2024-05-01T12:00:00.123Z")
        for i in range(LIMITS.max_records)
    ]
    answer = pair.same(identity, PUSH_RECORDS, push_input("full", "max", records))
    assert answer["data"] is not None, answer
    assert pull_all(pair, identity, "full", 0, None, "stripped") == 1
    over = pair.same(identity, PUSH_RECORDS, push_input("full", "over", [patch("one more", "x")]))
    assert over["errors"][0]["errorType"] == "LimitExceededException"


def test_errors_answer_the_same_bytes(pair: Pair) -> None:
    identity = "us-east-1:errors"
    first = pair.same(identity, PUSH_RECORDS, push_input("d", "a", [patch("k", "v")]))
    assert first["data"]["pushRecords"]["syncCount"] == 1
    cases = [
        push_input("d", "b", [patch("k", "stale", 0)]),  # conflict
        push_input("bad name!", "c", [patch("k", "v")]),
        push_input("d", "e", [patch("", "v")]),
        push_input("d", "f", [patch("k", "v", 1), patch("k", "w", 1)]),
        push_input("d", "", [patch("k", "v", 1)]),
        push_input("d", "g", [patch("k", None, -1)]),
        {"input": {**push_input("d", "h", [])["input"], "protocolVersion": 99}},
    ]
    for variables in cases:
        answer = pair.same(identity, PUSH_RECORDS, variables)
        assert answer["data"] is None and answer["errors"][0]["path"] == ["pushRecords"]
    pair.same(identity, LIST_RECORDS, {"datasetName": "d", "lastSyncCount": -1})
    pair.same(identity, LIST_RECORDS, {"datasetName": "d", "lastSyncCount": 0, "nextToken": "x"})
    pair.same(identity, LIST_RECORDS, {"datasetName": "d", "lastSyncCount": 0, "limit": 0})
    pair.same(identity, LIST_RECORDS, {"datasetName": "bad name!", "lastSyncCount": 0})
    pair.same(identity, LIST_DATASETS, {"nextToken": "not a token"})


def test_values_graphql_core_must_complete_answer_the_same_bytes(pair: Pair) -> None:
    """A sync count past 32 bits (imported) is completed by graphql-core on both sides."""
    identity = "us-east-1:import"
    when = datetime(2024, 1, 1, tzinfo=UTC)
    records = [Record("k", "v", 2**31, when, "device", None)]
    pair.storage_call("import_dataset", identity, "big", records, sync_count=2**31, now=when)
    answer = pair.same(identity, LIST_RECORDS, {"datasetName": "big", "lastSyncCount": 0})
    assert answer["data"] is None and answer["errors"][0]["errorType"] == "InternalFailure"
    assert answer["errors"][0]["path"] == ["listRecords", "syncCount"]
    pair.same(identity, LIST_DATASETS, {})


def test_answers_past_the_response_bound_are_refused_the_same(tmp_path: Path) -> None:
    pair = Pair(tmp_path, ServerLimits(max_response_bytes=2048))
    try:
        identity = "us-east-1:bound"
        pair.same(identity, PUSH_RECORDS, push_input("d", "a", [patch("k", "v" * 3000)]))
        answer = pair.same(identity, LIST_RECORDS, {"datasetName": "d", "lastSyncCount": 0})
        assert answer["errors"][0]["errorType"] == "BadRequestException"
    finally:
        pair.close()


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=False),
        st.text(max_size=8),
        st.sampled_from(["REPLACE", "REMOVE", "2024-05-01T12:00:00Z", "2024-13-01T00:00:00Z"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
good_patch = st.fixed_dictionaries(
    {"op": st.sampled_from(["REPLACE", "REMOVE"]), "key": keys, "syncCount": st.integers(0, 3)},
    optional={"value": values, "deviceLastModifiedDate": dates},
)
FIELDS = ("datasetName", "clientRequestId", "deviceId", "protocolVersion", "records")


@st.composite
def push_variables(draw: st.DrawFn) -> Any:
    """Push variables: well-formed, or with one part replaced, dropped or added."""
    records = draw(st.lists(good_patch, max_size=3))
    variables: Any = push_input(
        draw(st.sampled_from(["d", "e"])), draw(st.text(min_size=1, max_size=4)), records
    )
    where = draw(
        st.sampled_from(
            ["none", "input", "field", "drop", "extra", "patch", "patch field", "variables"]
        )
    )
    if where == "input":
        variables["input"] = draw(json_values)
    elif where == "field":
        variables["input"][draw(st.sampled_from(FIELDS))] = draw(json_values)
    elif where == "drop":
        del variables["input"][draw(st.sampled_from(FIELDS))]
    elif where == "extra":
        variables["input"][draw(st.text(max_size=8))] = draw(json_values)
    elif where == "patch" and records:
        records[draw(st.integers(0, len(records) - 1))] = draw(json_values)
    elif where == "patch field" and records:
        target = records[draw(st.integers(0, len(records) - 1))]
        name = draw(
            st.sampled_from(["op", "key", "value", "syncCount", "deviceLastModifiedDate", "extra"])
        )
        if draw(st.booleans()):
            target[name] = draw(json_values)
        else:
            target.pop(name, None)
    elif where == "variables":
        variables = draw(
            st.one_of(st.none(), st.dictionaries(st.text(max_size=6), json_values, max_size=2))
        )
    return variables


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    variables=push_variables(),
    operation_name=st.sampled_from([None, "PushRecords", "Other"]),
    identity=st.sampled_from(["us-east-1:m1", "us-east-1:m2"]),
)
def test_malformed_push_inputs_answer_the_same_bytes(
    pair: Pair, variables: Any, operation_name: str | None, identity: str
) -> None:
    pair.same(identity, strip_ignored_characters(PUSH_RECORDS), variables, operation_name)


list_variables = st.fixed_dictionaries(
    {},
    optional={
        "datasetName": st.one_of(st.sampled_from(["d", "bad name!"]), json_values),
        "lastSyncCount": st.one_of(
            st.integers(-1, 3), st.sampled_from([2**31, 1.0, True]), json_values
        ),
        "nextToken": st.one_of(st.none(), json_values),
        "limit": st.one_of(st.integers(-1, 2000), json_values),
    },
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(variables=list_variables, operation_name=st.sampled_from([None, "ListRecords", "Other"]))
def test_malformed_page_requests_answer_the_same_bytes(
    pair: Pair, variables: Any, operation_name: str | None
) -> None:
    identity = "us-east-1:pages"
    if pair.requests == 0:
        records = [patch(f"k{i}", f"v{i}") for i in range(5)]
        pair.same(identity, PUSH_RECORDS, push_input("d", "seed", records))
    pair.same(identity, LIST_RECORDS, variables, operation_name)
    pair.same(identity, LIST_DATASETS, variables, operation_name)


def test_the_document_cache_remembers_outcomes_and_is_bounded() -> None:
    cache = DocumentCache(load_schema(), ServerLimits(), size=4, max_text=600)
    first = cache.check(LIST_RECORDS)
    assert cache.get(LIST_RECORDS) is first and cache.check(LIST_RECORDS) is first
    refused = cache.check("query { nothing }")
    assert isinstance(refused, list) and refused[0]["errorType"] == "ValidationError"
    assert cache.check("query { nothing }") == refused
    for number in range(10):
        cache.check(f"query Q{number} {{ serverInfo {{ maxRecords }} }}")
        assert len(cache) <= 4
    assert cache.get(LIST_RECORDS) is None  # dropped as least recently used
    long = "query Long { serverInfo { maxRecords } }" + " " * 600
    assert isinstance(cache.check(long), CheckedDocument)
    assert cache.get(long) is None  # too long to remember
    fresh = cache.check(LIST_RECORDS)
    assert isinstance(fresh, CheckedDocument) and isinstance(first, CheckedDocument)
    assert fresh is not first and fresh.selected == first.selected
