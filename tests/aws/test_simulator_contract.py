"""The sync contract of server_schema/ (VTL resolvers over DynamoDB), run by AWS's AppSync
simulator against moto, through gql's AIOHTTPTransport + AppSyncIAMAuthentication.

Wire-level checks (errorType/errorInfo shapes, page tokens, concurrent batches); the limits,
paging of 1,024 records and the 1 MB dataset run through the client in
test_simulator_client.py (the `RemoteBackend` contract and `Client` scenarios)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from cogsync.remote import operations
from tests.aws.conftest import SimulatorBackend
from tests.aws.wire import (
    GraphQLFailure,
    datasets,
    delete,
    execute,
    patch,
    pull,
    push,
    values,
)

pytestmark = pytest.mark.aws


@pytest.fixture
def alice_keys(aws_backend: SimulatorBackend) -> tuple[str, str]:
    """(access key, identity id) of a fresh identity."""
    return aws_backend.identity()


@pytest.fixture
def alice(aws_backend: SimulatorBackend, alice_keys: tuple[str, str]):  # type: ignore[no-untyped-def]
    return aws_backend.client(alice_keys[0])


async def test_server_info_announces_the_limits(alice) -> None:  # type: ignore[no-untyped-def]
    info = (await execute(alice, operations.SERVER_INFO))["serverInfo"]
    assert info == {
        "protocolVersion": 1,
        "maxDatasets": 20,
        "maxRecords": 1024,
        "maxDatasetBytes": 1_048_576,
        "maxKeyBytes": 128,
    }


async def test_push_pull_round_trip_with_metadata(alice) -> None:  # type: ignore[no-untyped-def]
    stamp = "2024-05-06T07:08:09.123Z"
    change = await push(
        alice,
        "notes",
        [patch("a", "1"), patch("ü-key", "wert ✓", deviceLastModifiedDate=stamp)],
        device="laptop",
    )
    assert change["syncCount"] == 1 and change["deleted"] is False
    assert {r["key"]: r["syncCount"] for r in change["records"]} == {"a": 1, "ü-key": 1}
    page = await pull(alice, "notes")
    assert page["syncCount"] == 1 and page["deleted"] is False and page["nextToken"] is None
    by_key = {r["key"]: r for r in page["records"]}
    assert by_key["a"]["value"] == "1" and by_key["a"]["lastModifiedBy"] == "laptop"
    assert by_key["ü-key"]["value"] == "wert ✓"
    assert by_key["ü-key"]["deviceLastModifiedDate"] == stamp
    listed = (await datasets(alice))["notes"]
    assert listed["syncCount"] == 1 and listed["recordCount"] == 2
    assert listed["sizeInBytes"] == len(b"a1") + len("ü-keywert ✓".encode())


async def test_pull_since_returns_only_newer_current_versions(alice) -> None:  # type: ignore[no-untyped-def]
    await push(alice, "d", [patch("a", "1"), patch("b", "1")])
    await push(alice, "d", [patch("a", "2", 1)])
    await push(alice, "d", [patch("c", "3")])
    full = await pull(alice, "d")
    assert [(r["key"], r["value"], r["syncCount"]) for r in full["records"]] == [
        ("b", "1", 1),
        ("a", "2", 2),
        ("c", "3", 3),
    ]
    since = await pull(alice, "d", 2)
    assert [(r["key"], r["syncCount"]) for r in since["records"]] == [("c", 3)]
    assert (await pull(alice, "d", 3))["records"] == []


async def test_tombstones_reach_other_devices_and_can_be_rewritten(alice) -> None:  # type: ignore[no-untyped-def]
    await push(alice, "d", [patch("gone", "x"), patch("kept", "y")])
    await push(alice, "d", [patch("gone", None, 1)])
    page = await pull(alice, "d", 1)
    assert [(r["key"], r["value"], r["syncCount"]) for r in page["records"]] == [("gone", None, 2)]
    assert (await datasets(alice))["d"]["recordCount"] == 1
    await push(alice, "d", [patch("gone", "back", 0)])  # a new record over a tombstone
    assert await values(alice, "d") == {"kept": "y", "gone": "back"}


async def test_stale_sync_count_rejects_the_whole_batch(alice) -> None:  # type: ignore[no-untyped-def]
    await push(alice, "d", [patch("a", "1"), patch("b", "1")])
    await push(alice, "d", [patch("a", "2", 1)])
    with pytest.raises(GraphQLFailure) as caught:
        await push(alice, "d", [patch("b", "new", 1), patch("a", "stale", 1), patch("c", "x")])
    assert caught.value.error_type == "ConflictException"
    assert caught.value.info == {"key": "a", "current": 2, "expected": 1}
    assert await values(alice, "d") == {"a": "2", "b": "1"}
    assert (await pull(alice, "d"))["syncCount"] == 2


async def test_retried_request_id_returns_first_result_and_applies_nothing(alice) -> None:  # type: ignore[no-untyped-def]
    request = str(uuid.uuid4())
    first = await push(alice, "d", [patch("a", "1")], request_id=request)
    again = await push(alice, "d", [patch("a", "1")], request_id=request)
    assert again["syncCount"] == first["syncCount"] == 1
    assert [(r["key"], r["syncCount"]) for r in again["records"]] == [("a", 1)]
    assert (await pull(alice, "d"))["syncCount"] == 1
    with pytest.raises(GraphQLFailure) as caught:
        await delete(alice, "d", request_id=request)
    assert caught.value.error_type == "InvalidParameterException"


async def test_concurrent_batches_on_one_dataset_commit_one_at_a_time(  # type: ignore[no-untyped-def]
    alice, alice_keys, aws_backend
) -> None:
    await push(alice, "d", [patch("a", "0")])
    second_device_key, _ = aws_backend.identity(alice_keys[1])
    other = aws_backend.client(second_device_key)
    results = await asyncio.gather(
        push(alice, "d", [patch("a", "left", 1)]),
        push(other, "d", [patch("a", "right", 1)]),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, GraphQLFailure)]
    assert len(failures) == 1 and failures[0].error_type == "ConflictException"
    winner = next(r for r in results if isinstance(r, dict))
    assert winner["syncCount"] == 2
    assert (await values(alice, "d"))["a"] in {"left", "right"}


@pytest.mark.parametrize(
    ("dataset", "records", "version", "parameter"),
    [
        ("bad name!", [patch("a", "1")], 1, "datasetName"),
        ("d", [patch("k" * 129, "1")], 1, "key"),
        ("d", [patch("ü" * 65, "1")], 1, "key"),
        ("d", [{"op": "REPLACE", "key": "a", "value": None, "syncCount": 0}], 1, "value"),
        ("d", [patch("a", "1"), patch("a", "2")], 1, "records"),
        ("d", [patch("a", "1")], 2, "protocolVersion"),
    ],
)
async def test_invalid_pushes_are_refused(alice, dataset, records, version, parameter) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GraphQLFailure) as caught:
        await push(alice, dataset, records, protocol_version=version)
    assert caught.value.error_type == "InvalidParameterException"
    assert caught.value.info == {"parameter": parameter}
    assert await datasets(alice) == {}


async def test_record_limit(alice) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GraphQLFailure) as caught:
        await push(alice, "d", [patch(f"k{i}", "v") for i in range(1025)])
    assert caught.value.error_type == "LimitExceededException"
    assert caught.value.info == {"limit": "records", "max": 1024, "attempted": 1025}
    assert await datasets(alice) == {}


async def test_delete_dataset_leaves_tombstones_and_can_be_revived(alice) -> None:  # type: ignore[no-untyped-def]
    await push(alice, "d", [patch("a", "1"), patch("b", "2")])
    change = await delete(alice, "d")
    assert change == {
        "identityId": change["identityId"],
        "datasetName": "d",
        "syncCount": 2,
        "deleted": True,
    }
    page = await pull(alice, "d", 1)
    assert page["deleted"] is True and page["syncCount"] == 2
    assert {(r["key"], r["value"], r["syncCount"]) for r in page["records"]} == {
        ("a", None, 2),
        ("b", None, 2),
    }
    listed = (await datasets(alice))["d"]
    assert listed["deleted"] is True and listed["recordCount"] == 0 and listed["sizeInBytes"] == 0
    again = await delete(alice, "d")  # nothing left to delete
    assert again["syncCount"] == 2 and again["deleted"] is True
    absent = await delete(alice, "never-existed")
    assert absent["syncCount"] == 0 and absent["deleted"] is True
    revived = await push(alice, "d", [patch("c", "3")])
    assert revived["syncCount"] == 3
    assert (await pull(alice, "d", 2))["deleted"] is False
    assert await values(alice, "d") == {"a": None, "b": None, "c": "3"}


async def test_page_tokens_are_checked(alice) -> None:  # type: ignore[no-untyped-def]
    await push(alice, "d", [patch(f"k{i}", "v") for i in range(5)])
    first = await pull(alice, "d", limit=2)
    assert first["nextToken"]
    for bad, last in [("not-a-token", 0), (first["nextToken"], 1)]:
        with pytest.raises(GraphQLFailure) as caught:
            await pull(alice, "d", last, token=bad)
        assert caught.value.error_type == "InvalidParameterException"
    # Records written between pages do not shift the page window (upTo stays).
    await push(alice, "d", [patch("later", "v")])
    rest = await pull(alice, "d", token=first["nextToken"], limit=10)
    assert rest["syncCount"] == 1 and [r["key"] for r in rest["records"]] == ["k2", "k3", "k4"]


async def test_other_identities_see_nothing(alice, aws_backend) -> None:  # type: ignore[no-untyped-def]
    await push(alice, "private", [patch("secret", "42")])
    bob_key, _ = aws_backend.identity()
    bob = aws_backend.client(bob_key)
    assert await datasets(bob) == {}
    page = await pull(bob, "private")
    assert page["records"] == [] and page["syncCount"] == 0
    await push(bob, "private", [patch("secret", "mine")])
    assert await values(alice, "private") == {"secret": "42"}


async def test_unknown_credentials_are_refused(aws_backend) -> None:  # type: ignore[no-untyped-def]
    stranger = aws_backend.client("ASIAUNKNOWNKEY0000")
    for call in (
        execute(stranger, operations.SERVER_INFO),
        pull(stranger, "d"),
        push(stranger, "d", []),
    ):
        with pytest.raises(GraphQLFailure) as caught:
            await call
        assert caught.value.error_type == "UnauthorizedException"
