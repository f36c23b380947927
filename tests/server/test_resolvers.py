"""SyncService: GraphQL execution and subscriptions, called directly (no HTTP)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cogsync.limits import Limits
from cogsync.models import PROTOCOL_VERSION, RecordPatch
from cogsync.server.hooks import ServerHooks, SyncRejected
from cogsync.server.resolvers import SubscriptionRefused, SyncService
from cogsync.server.storage import ServerStorage

A, B = "us-east-1:aaaa", "us-east-1:bbbb"
PUSH = """
mutation Push($input: PushRecordsInput!) {
  pushRecords(input: $input) {
    identityId datasetName syncCount deleted
    records { key value syncCount lastModifiedDate lastModifiedBy deviceLastModifiedDate }
  }
}"""
PULL = """
query Pull($name: String!, $since: Int!, $token: String, $limit: Int) {
  listRecords(datasetName: $name, lastSyncCount: $since, nextToken: $token, limit: $limit) {
    datasetName syncCount deleted mergedDatasetNames nextToken
    records { key value syncCount }
  }
}"""
DELETE = """
mutation Delete($name: String!, $id: String!) {
  deleteDataset(datasetName: $name, clientRequestId: $id) { datasetName syncCount deleted }
}"""
SUBSCRIBE = """
subscription Changes($id: ID!) {
  onDatasetChanged(identityId: $id) { identityId datasetName syncCount deleted records { value } }
}"""


def make_service(tmp_path: Path, **kwargs: Any) -> SyncService:
    limits = kwargs.pop("limits", Limits())
    return SyncService(ServerStorage(tmp_path / "server.db", limits), **kwargs)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[SyncService]:
    svc = make_service(tmp_path)
    yield svc
    svc.close()
    svc.storage.close()


def push_vars(
    name: str, *records: tuple[str, str | None, int], request: str = "r1"
) -> dict[str, Any]:
    patches = [
        {"op": "REPLACE" if v is not None else "REMOVE", "key": k, "value": v, "syncCount": c}
        for k, v, c in records
    ]
    return {
        "input": {
            "datasetName": name,
            "clientRequestId": request,
            "deviceId": "device-1",
            "protocolVersion": PROTOCOL_VERSION,
            "records": patches,
        }
    }


def only_error(response: dict[str, Any]) -> dict[str, Any]:
    assert response["data"] is None, response
    errors = response["errors"]
    for error in errors:
        assert set(error) == {"message", "errorType", "errorInfo", "path", "locations"}
        assert "Traceback" not in error["message"]
    assert len({e["errorType"] for e in errors}) == 1
    return errors[0]


async def test_server_info_announces_version_and_limits(tmp_path: Path) -> None:
    svc = make_service(tmp_path, limits=Limits(max_records=10))
    response = await svc.execute(
        A,
        "{ serverInfo { protocolVersion maxDatasets maxRecords maxDatasetBytes maxKeyBytes } }",
        None,
        None,
    )
    assert response == {
        "data": {
            "serverInfo": {
                "protocolVersion": PROTOCOL_VERSION,
                "maxDatasets": 20,
                "maxRecords": 10,
                "maxDatasetBytes": 1_048_576,
                "maxKeyBytes": 128,
            }
        }
    }
    svc.close()


async def test_push_then_pull_round_trips_with_appsync_datetimes(service: SyncService) -> None:
    variables = push_vars("prefs", ("theme", "dark", 0), ("lang", "fr", 0))
    variables["input"]["records"][0]["deviceLastModifiedDate"] = "2024-05-01T14:00:00+02:00"
    pushed = await service.execute(A, PUSH, variables, "Push")
    change = pushed["data"]["pushRecords"]
    assert "errors" not in pushed
    assert (change["identityId"], change["syncCount"], change["deleted"]) == (A, 1, False)
    theme = next(r for r in change["records"] if r["key"] == "theme")
    assert theme["deviceLastModifiedDate"] == "2024-05-01T12:00:00.000Z"
    assert theme["lastModifiedDate"].endswith("Z") and theme["lastModifiedBy"] == "device-1"
    pulled = await service.execute(A, PULL, {"name": "prefs", "since": 0}, None)
    page = pulled["data"]["listRecords"]
    assert page["syncCount"] == 1 and page["nextToken"] is None
    assert {r["key"]: r["value"] for r in page["records"]} == {"theme": "dark", "lang": "fr"}


async def test_conflict_is_a_conflict_exception_naming_key_current_expected(
    service: SyncService,
) -> None:
    await service.execute(A, PUSH, push_vars("d", ("a", "1", 0), ("b", "2", 0)), None)
    await service.execute(A, PUSH, push_vars("d", ("b", "3", 1), request="r2"), None)
    response = await service.execute(
        A, PUSH, push_vars("d", ("a", "x", 1), ("b", "y", 1), request="r3"), None
    )
    error = only_error(response)
    assert error["errorType"] == "ConflictException"
    assert error["errorInfo"] == {"key": "b", "current": 2, "expected": 1}
    assert error["path"] == ["pushRecords"] and error["locations"]
    pulled = await service.execute(A, PULL, {"name": "d", "since": 0}, None)
    assert {r["key"]: r["value"] for r in pulled["data"]["listRecords"]["records"]} == {
        "a": "1",
        "b": "3",
    }


async def test_retried_request_returns_the_first_result_and_publishes_once(
    service: SyncService,
) -> None:
    events = await service.subscribe(A, SUBSCRIBE, {"id": A}, None)
    first = await service.execute(A, PUSH, push_vars("d", ("a", "1", 0), request="same"), None)
    retry = await service.execute(A, PUSH, push_vars("d", ("a", "9", 1), request="same"), None)
    assert retry == first
    await service.execute(A, PUSH, push_vars("d", ("a", "2", 1), request="next"), None)
    got = [await asyncio.wait_for(events.__anext__(), 1) for _ in range(2)]
    assert [e["data"]["onDatasetChanged"]["syncCount"] for e in got] == [1, 2]
    await events.aclose()


@pytest.mark.parametrize(
    ("limits", "records", "expected"),
    [
        (Limits(max_records=2), [("a", "1", 0), ("b", "2", 0), ("c", "3", 0)], ("records", 2, 3)),
        (Limits(max_dataset_bytes=6), [("ké", "€€", 0)], ("bytes", 6, 9)),
    ],
)
async def test_limits_are_limit_exceeded_exceptions(
    tmp_path: Path,
    limits: Limits,
    records: list[tuple[str, str, int]],
    expected: tuple[str, int, int],
) -> None:
    svc = make_service(tmp_path, limits=limits)
    error = only_error(await svc.execute(A, PUSH, push_vars("d", *records), None))
    assert error["errorType"] == "LimitExceededException"
    assert error["errorInfo"] == dict(zip(("limit", "max", "attempted"), expected, strict=True))
    ok = await svc.execute(A, PUSH, push_vars("d", *records[:-1], request="fits"), None)
    assert len(records) == 1 or "errors" not in ok
    svc.close()


async def test_dataset_limit_is_named_datasets(tmp_path: Path) -> None:
    svc = make_service(tmp_path, limits=Limits(max_datasets=1))
    await svc.execute(A, PUSH, push_vars("one", ("k", "v", 0)), None)
    error = only_error(
        await svc.execute(A, PUSH, push_vars("two", ("k", "v", 0), request="2"), None)
    )
    assert error["errorInfo"] == {"limit": "datasets", "max": 1, "attempted": 2}
    svc.close()


@pytest.mark.parametrize(
    ("query", "variables", "needle"),
    [
        (PUSH, push_vars("bad name!", ("k", "v", 0)), "dataset name"),
        (PUSH, push_vars("d", ("", "v", 0)), "record key"),
        (PUSH, push_vars("d", ("k", "v", -3)), "negative"),
        (PULL, {"name": "d", "since": 0, "token": "not-a-token"}, "nextToken"),
        (PULL, {"name": "d", "since": 0, "limit": -1}, "limit"),
    ],
)
async def test_bad_parameters_are_invalid_parameter_exceptions(
    service: SyncService, query: str, variables: dict[str, Any], needle: str
) -> None:
    error = only_error(await service.execute(A, query, variables, None))
    assert error["errorType"] == "InvalidParameterException"
    assert needle in error["message"]


async def test_wrong_protocol_version_is_refused(service: SyncService) -> None:
    variables = push_vars("d", ("k", "v", 0))
    variables["input"]["protocolVersion"] = 99
    error = only_error(await service.execute(A, PUSH, variables, None))
    assert error["errorType"] == "InvalidParameterException" and "99" in error["message"]


@pytest.mark.parametrize(
    ("query", "variables", "error_type"),
    [
        ("{ serverInfo { nope } }", None, "ValidationError"),
        (
            "{ listRecords(datasetName: 5, lastSyncCount: 0) { syncCount } }",
            None,
            "ValidationError",
        ),
        (PULL, {"name": "d", "since": "zero"}, "ValidationError"),
        (PULL, {"since": 0}, "ValidationError"),
        (PUSH, {"input": {"datasetName": "d"}}, "ValidationError"),
        ("{ serverInfo { protocolVersion ", None, "BadRequestException"),
        (SUBSCRIBE, {"id": A}, "BadRequestException"),
        (
            "query A { serverInfo { maxRecords } } query B { serverInfo { maxKeyBytes } }",
            None,
            "ValidationError",
        ),
    ],
)
async def test_malformed_requests_get_typed_errors(
    service: SyncService, query: str, variables: dict[str, Any] | None, error_type: str
) -> None:
    error = only_error(await service.execute(A, query, variables, None))
    assert error["errorType"] == error_type
    assert error["message"]


async def test_datetime_variables_are_parsed_strictly(service: SyncService) -> None:
    variables = push_vars("d", ("k", "v", 0))
    variables["input"]["records"][0]["deviceLastModifiedDate"] = "2024-05-01 12:00"
    error = only_error(await service.execute(A, PUSH, variables, None))
    assert error["errorType"] == "ValidationError" and "AWSDateTime" in error["message"]


async def test_non_json_object_arguments_are_bad_requests(service: SyncService) -> None:
    bad: Any = ["not", "a", "dict"]
    error = only_error(await service.execute(A, PULL, bad, None))
    assert error["errorType"] == "BadRequestException"
    error = only_error(await service.execute(A, bad, None, None))
    assert error["errorType"] == "BadRequestException"


async def test_identity_comes_only_from_the_caller(service: SyncService) -> None:
    await service.execute(A, PUSH, push_vars("shared", ("secret", "a", 0)), None)
    listed = await service.execute(
        B, "{ listDatasets { datasets { name } nextToken } }", None, None
    )
    assert listed == {"data": {"listDatasets": {"datasets": [], "nextToken": None}}}
    pulled = await service.execute(B, PULL, {"name": "shared", "since": 0}, None)
    assert pulled["data"]["listRecords"]["records"] == []
    deleted = await service.execute(B, DELETE, {"name": "shared", "id": "x"}, None)
    assert deleted["data"]["deleteDataset"]["syncCount"] == 0
    again = await service.execute(A, PULL, {"name": "shared", "since": 0}, None)
    assert again["data"]["listRecords"]["records"][0]["value"] == "a"


async def test_subscription_for_another_identity_is_refused(service: SyncService) -> None:
    with pytest.raises(SubscriptionRefused) as caught:
        await service.subscribe(A, SUBSCRIBE, {"id": B}, None)
    assert caught.value.error_type == "UnauthorizedException"
    literal = 'subscription { onDatasetChanged(identityId: "someone-else") { syncCount } }'
    with pytest.raises(SubscriptionRefused, match="own identity"):
        await service.subscribe(A, literal, None, None)
    assert service.hub.subscriber_count(A) == service.hub.subscriber_count(B) == 0


@pytest.mark.parametrize(
    ("query", "variables", "error_type"),
    [
        ("{ serverInfo { protocolVersion } }", None, "BadRequestException"),
        ("subscription { onDatasetChanged { syncCount } }", None, "ValidationError"),
        ("subscription {", None, "BadRequestException"),
        (SUBSCRIBE, {}, "ValidationError"),
    ],
)
async def test_invalid_subscriptions_are_refused(
    service: SyncService, query: str, variables: dict[str, Any] | None, error_type: str
) -> None:
    with pytest.raises(SubscriptionRefused) as caught:
        await service.subscribe(A, query, variables, None)
    assert caught.value.error_type == error_type and caught.value.message


async def test_subscribers_get_their_own_changes_without_values(service: SyncService) -> None:
    mine = await service.subscribe(A, SUBSCRIBE, {"id": A}, "Changes")
    theirs = await service.subscribe(B, SUBSCRIBE, {"id": B}, None)
    assert service.hub.subscriber_count(A) == 1
    await service.execute(B, PUSH, push_vars("other", ("k", "b-secret", 0)), None)
    await service.execute(A, PUSH, push_vars("d", ("k", "a-secret", 0), request="a1"), None)
    await service.execute(A, DELETE, {"name": "d", "id": "a2"}, None)
    first = await asyncio.wait_for(mine.__anext__(), 1)
    assert first == {
        "data": {
            "onDatasetChanged": {
                "identityId": A,
                "datasetName": "d",
                "syncCount": 1,
                "deleted": False,
                "records": None,
            }
        }
    }
    second = await asyncio.wait_for(mine.__anext__(), 1)
    assert second["data"]["onDatasetChanged"]["deleted"] is True
    assert "secret" not in repr(first) + repr(second)
    other = await asyncio.wait_for(theirs.__anext__(), 1)
    assert other["data"]["onDatasetChanged"]["datasetName"] == "other"
    await mine.aclose()
    await theirs.aclose()
    assert service.hub.subscriber_count(A) == service.hub.subscriber_count(B) == 0


async def test_unstarted_subscription_unregisters_on_close(service: SyncService) -> None:
    events = await service.subscribe(A, SUBSCRIBE, {"id": A}, None)
    await events.aclose()
    assert service.hub.subscriber_count(A) == 0


async def test_closing_the_service_ends_subscriptions(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    events = await svc.subscribe(A, SUBSCRIBE, {"id": A}, None)
    svc.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(events.__anext__(), 1)
    assert svc.hub.subscriber_count(A) == 0


async def test_paging_through_graphql(service: SyncService) -> None:
    for batch in range(3):
        records = [(f"k{batch}{i}", "v", 0) for i in range(4)]
        await service.execute(A, PUSH, push_vars("d", *records, request=f"b{batch}"), None)
    keys: list[str] = []
    token = None
    pages = 0
    while True:
        variables = {"name": "d", "since": 0, "token": token, "limit": 5}
        page = (await service.execute(A, PULL, variables, None))["data"]["listRecords"]
        keys += [r["key"] for r in page["records"]]
        pages += 1
        token = page["nextToken"]
        if token is None:
            break
    assert pages == 3 and len(keys) == 12 == len(set(keys))


async def test_sync_trigger_rejection_reaches_the_client(tmp_path: Path) -> None:
    def trigger(identity: str, name: str, patches: list[RecordPatch]) -> list[RecordPatch]:
        if name == "locked":
            raise SyncRejected(f"dataset {name!r} is read-only for {identity}")
        return patches

    svc = make_service(tmp_path, hooks=ServerHooks(sync_trigger=trigger))
    error = only_error(await svc.execute(A, PUSH, push_vars("locked", ("k", "v", 0)), None))
    assert error["errorType"] == "InvalidParameterException"
    assert error["errorInfo"] == {"rejectedBy": "syncTrigger"}
    assert "read-only" in error["message"]
    ok = await svc.execute(A, PUSH, push_vars("open", ("k", "v", 0), request="2"), None)
    assert ok["data"]["pushRecords"]["syncCount"] == 1
    svc.close()


async def test_unexpected_failures_are_generic_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(identity: str, name: str, patches: list[RecordPatch]) -> list[RecordPatch]:
        raise RuntimeError("operator bug: secret detail")

    svc = make_service(tmp_path, hooks=ServerHooks(sync_trigger=broken))
    with caplog.at_level(logging.ERROR, logger="cogsync.server.resolvers"):
        error = only_error(await svc.execute(A, PUSH, push_vars("d", ("k", "v", 0)), None))
    assert error["errorType"] == "InternalFailure"
    assert "secret detail" not in error["message"]
    assert "secret detail" in caplog.text
    pulled = await svc.execute(A, PULL, {"name": "d", "since": 0}, None)
    assert pulled["data"]["listRecords"]["records"] == []
    svc.close()


async def test_merge_identity_publishes_to_the_target(service: SyncService) -> None:
    await service.execute(B, PUSH, push_vars("prefs", ("k", "guest", 0)), None)
    events = await service.subscribe(A, SUBSCRIBE, {"id": A}, None)
    names = await service.merge_identity(B, A)
    assert names == [f"prefs.{B}"]
    event = await asyncio.wait_for(events.__anext__(), 1)
    assert event["data"]["onDatasetChanged"]["datasetName"] == f"prefs.{B}"
    page = (await service.execute(A, PULL, {"name": "prefs", "since": 0}, None))["data"]
    assert page["listRecords"]["mergedDatasetNames"] == [f"prefs.{B}"]
    await events.aclose()
