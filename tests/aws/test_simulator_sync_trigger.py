"""The stack-side sync trigger (template parameter ``SyncTriggerFunctionArn``) on AWS's AppSync
simulator: the push pipeline invokes a Lambda data source, which the launcher serves from a
local Python handler (`tests.aws.lambda_endpoint`).

The handler is `tests.moving.operator_trigger.handler`, the `lambda_handler` wrapping of the
very trigger that `cogsync serve --sync-trigger` loads in tests/moving: it refuses the key
``forbidden`` and upper-cases values of keys starting with ``shout``. The client-level
scenario runs against `cogsync serve` with that trigger too, for the same outcome.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cogsync import Client, Config
from cogsync.exceptions import ServerError, UsageError
from cogsync.server.hooks import ServerHooks
from cogsync.server.runner import EmbeddedServer
from tests.aws.conftest import SCHEMA_DIR, SIMULATOR_DIR, SYNC_TRIGGER_ARN, SimulatorBackend
from tests.aws.lambda_endpoint import LambdaEndpoint
from tests.aws.wire import GraphQLFailure, datasets, patch, pull_all, push, values
from tests.moving.operator_trigger import check

pytestmark = pytest.mark.aws

Logins = Callable[[str], dict[str, str] | None]


@pytest.fixture
def alice(aws_trigger_backend: SimulatorBackend, trigger_lambda: LambdaEndpoint):  # type: ignore[no-untyped-def]
    """A gql client of a fresh identity on the simulator with the trigger."""
    access_key, identity_id = aws_trigger_backend.identity()
    client = aws_trigger_backend.client(access_key)
    client.identity_id = identity_id  # type: ignore[attr-defined]
    return client


def _scores(identity: str, device: str) -> dict[str, Any]:
    return {
        "identityId": identity,
        "datasetName": "scores",
        "records": [patch("shout", "hi"), patch("quiet", "hi")],
        "deviceId": device,
        "syncCount": 0,
    }


# --- end to end, through the client, on both backends -------------------------------------


@pytest.fixture(params=["serve", "simulator"])
def triggered(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Config, Logins]]:
    """A client config whose server runs `check` as its sync trigger, and a login maker:
    `cogsync serve` with the trigger as a hook, or the simulator with the trigger stack."""
    if request.param == "serve":
        hooks = ServerHooks(sync_trigger=check)
        with EmbeddedServer(tmp_path / "serve", port=0, hooks=hooks) as server:
            yield server.config, lambda user: None
        return
    simulator: SimulatorBackend = request.getfixturevalue("aws_trigger_backend")
    request.getfixturevalue("trigger_lambda")
    suffix = uuid.uuid4().hex[:8]
    yield simulator.config, lambda user: simulator.logins(f"{user}-{suffix}")


def test_the_trigger_rejects_and_modifies_batches_end_to_end(
    triggered: tuple[Config, Logins], tmp_path: Path
) -> None:
    config, logins = triggered
    with Client(config, db_path=tmp_path / "a.db", logins=logins("alice")) as device:
        scores = device.dataset("scores")
        scores.put("shout", "hello")
        scores.put("quiet", "hello")
        first = scores.synchronize()
        # The modified batch took the sync count after next: the device saw a write in
        # between and pulls the batch back on its next sync.
        assert first.pushed == 2 and first.sync_count == 2
        scores.synchronize()
        assert scores.get("shout") == "HELLO" and scores.get("quiet") == "hello"
        assert not scores.record("shout").dirty  # type: ignore[union-attr]
        scores.put("quiet", "still quiet")
        assert scores.synchronize().sync_count == 3  # unmodified: the next sync count
        scores.put("forbidden", "x")
        scores.put("shout", "again")
        with pytest.raises(
            UsageError,
            match="sync trigger rejected the update: scores: the key 'forbidden' is not allowed",
        ):
            scores.synchronize()
        assert scores.record("forbidden").dirty  # type: ignore[union-attr]
        identity_id = device.identity_id
    with Client(
        config, db_path=tmp_path / "b.db", logins=logins("alice"), identity_id=identity_id
    ) as other:
        copy = other.dataset("scores")
        copy.synchronize()
        assert copy.get_all() == {"shout": "HELLO", "quiet": "still quiet"}


# --- the wire: what the Lambda sees, what the client gets ----------------------------------


async def test_a_rejected_batch_is_a_typed_error_and_writes_nothing(  # type: ignore[no-untyped-def]
    alice, aws_trigger_backend: SimulatorBackend, trigger_lambda: LambdaEndpoint
) -> None:
    with pytest.raises(GraphQLFailure) as caught:
        await push(alice, "scores", [patch("forbidden", "x"), patch("ok", "1")])
    assert caught.value.error_type == "InvalidParameterException"
    assert caught.value.first["message"] == "scores: the key 'forbidden' is not allowed"
    assert caught.value.info == {"rejectedBy": "syncTrigger"}
    assert len(trigger_lambda.invocations) == 1
    assert await datasets(alice) == {}
    assert aws_trigger_backend.table_items(f"r#{alice.identity_id}#scores") == []
    # Into an existing dataset; a rejection without a reason gets a default one.
    await push(alice, "scores", [patch("ok", "1")])
    trigger_lambda.handler = lambda event, context: {"rejected": ""}
    with pytest.raises(GraphQLFailure) as caught:
        await push(alice, "scores", [patch("ok", "2", 1)])
    assert caught.value.first["message"] == "rejected by the sync trigger"
    assert caught.value.info == {"rejectedBy": "syncTrigger"}
    assert await values(alice, "scores") == {"ok": "1"}
    assert (await datasets(alice))["scores"]["syncCount"] == 1


async def test_the_lambda_sees_the_batch_as_sent(  # type: ignore[no-untyped-def]
    alice, trigger_lambda: LambdaEndpoint
) -> None:
    stamp = "2024-05-06T07:08:09.123Z"
    request_id = str(uuid.uuid4())
    await push(alice, "notes", [patch("a", "1")], device="laptop")
    sent = [patch("b", "2", deviceLastModifiedDate=stamp), patch("a", None, 1)]
    change = await push(alice, "notes", sent, request_id=request_id, device="phone")
    assert change["syncCount"] == 2  # handed back unchanged (lambda_handler's spelling)
    (_, invocation) = trigger_lambda.invocations
    assert invocation.function == SYNC_TRIGGER_ARN
    assert invocation.event == {
        "identityId": alice.identity_id,
        "datasetName": "notes",
        "records": [
            {
                "op": "REPLACE",
                "key": "b",
                "value": "2",
                "syncCount": 0,
                "deviceLastModifiedDate": stamp,
            },
            {"op": "REMOVE", "key": "a", "value": None, "syncCount": 1},
        ],
        "deviceId": "phone",
        "clientRequestId": request_id,
        "syncCount": 1,
    }


async def test_a_modified_batch_takes_the_sync_count_after_next(  # type: ignore[no-untyped-def]
    alice, trigger_lambda: LambdaEndpoint
) -> None:
    request_id = str(uuid.uuid4())
    change = await push(
        alice, "scores", [patch("shout", "hi"), patch("quiet", "hi")], request_id=request_id
    )
    assert change["syncCount"] == 2
    assert [(r["key"], r["syncCount"]) for r in change["records"]] == [("quiet", 2), ("shout", 2)]
    assert await values(alice, "scores") == {"quiet": "hi", "shout": "HI"}
    assert (await pull_all(alice, "scores", 1))["records"][1]["value"] == "HI"
    # A retry is answered from the first result; the trigger is not asked again.
    again = await push(
        alice, "scores", [patch("shout", "hi"), patch("quiet", "hi")], request_id=request_id
    )
    assert again["syncCount"] == 2
    assert len(trigger_lambda.invocations) == 1
    # An unmodified batch takes the next sync count.
    assert (await push(alice, "scores", [patch("quiet", "hush", 2)]))["syncCount"] == 3
    assert (await datasets(alice))["scores"]["syncCount"] == 3


@pytest.mark.parametrize(
    ("sent", "returned", "sync_count"),
    [
        ("2024-05-06T07:08:09Z", "2024-05-06T07:08:09.000Z", 1),  # another spelling, same instant
        ("2024-05-06T09:08:09.5+02:00", "2024-05-06T07:08:09.500Z", 1),
        ("2024-05-06T07:08:09.123Z", "2024-05-06T07:08:10.123Z", 2),  # another instant
    ],
)
async def test_device_dates_are_compared_as_instants(  # type: ignore[no-untyped-def]
    alice, trigger_lambda: LambdaEndpoint, sent: str, returned: str, sync_count: int
) -> None:
    def restamp(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"records": [{**r, "deviceLastModifiedDate": returned} for r in event["records"]]}

    trigger_lambda.handler = restamp
    change = await push(alice, "d", [patch("k", "v", deviceLastModifiedDate=sent)])
    assert change["syncCount"] == sync_count
    if sync_count == 2:  # the trigger's batch; else the device's, as it sent it
        assert change["records"][0]["deviceLastModifiedDate"] == returned


async def test_the_trigger_may_drop_and_add_records(  # type: ignore[no-untyped-def]
    alice, trigger_lambda: LambdaEndpoint
) -> None:
    def audit(event: dict[str, Any], context: Any) -> dict[str, Any]:
        kept = [r for r in event["records"] if r["key"] != "drop"]
        return {
            "records": [
                *kept,
                {"op": "REPLACE", "key": "audit", "value": event["deviceId"], "syncCount": 0},
            ]
        }

    trigger_lambda.handler = audit
    change = await push(alice, "d", [patch("keep", "1"), patch("drop", "2")], device="tablet")
    assert change["syncCount"] == 2
    assert await values(alice, "d") == {"audit": "tablet", "keep": "1"}


@pytest.mark.parametrize(
    ("answer", "error_type", "info"),
    [
        # The returned batch is measured and checked like a device's.
        (
            lambda r: [{**r[0], "value": "v" * 1_048_576}],
            "LimitExceededException",
            {"limit": "bytes", "max": 1_048_576, "attempted": 1_048_577},
        ),
        (lambda r: [*r, r[0]], "InvalidParameterException", {"parameter": "records"}),
        (lambda r: [{**r[0], "key": "k" * 129}], "InvalidParameterException", {"parameter": "key"}),
        (lambda r: [{**r[0], "value": None}], "InvalidParameterException", {"parameter": "value"}),
        (
            lambda r: [{**r[0], "syncCount": 7}],
            "ConflictException",
            {"key": "k", "current": 0, "expected": 7},
        ),
    ],
    ids=["size limit", "duplicate key", "long key", "replace without value", "stale sync count"],
)
async def test_a_modified_batch_is_checked_again(  # type: ignore[no-untyped-def]
    alice, trigger_lambda: LambdaEndpoint, answer, error_type: str, info: dict[str, Any]
) -> None:
    trigger_lambda.handler = lambda event, context: {"records": answer(event["records"])}
    with pytest.raises(GraphQLFailure) as caught:
        await push(alice, "d", [patch("k", "v")])
    assert (caught.value.error_type, caught.value.info) == (error_type, info)
    assert await datasets(alice) == {}


def _fails(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("database password is hunter2")


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (_fails, "the sync trigger failed, so nothing was applied"),
        (lambda e, c: None, "answered neither"),
        (lambda e, c: {"records": "all of them"}, "answered neither"),
        (lambda e, c: {"records": [{"key": 5, "value": "v"}]}, "malformed record patch (number 0)"),
        (lambda e, c: {"records": [{"key": "k", "op": "UPSERT"}]}, "malformed record patch"),
        (lambda e, c: {"records": [{"key": "k", "value": 5}]}, "malformed record patch"),
        (
            lambda e, c: {"records": [{"key": "k", "value": "v", "syncCount": "0"}]},
            "malformed record patch",
        ),
        (
            lambda e, c: {"records": [{"key": "k", "value": "v", "syncCount": 0.5}]},
            "malformed record patch",
        ),
        (
            lambda e, c: {
                "records": [{"key": "k", "value": "v", "deviceLastModifiedDate": "yesterday"}]
            },
            "malformed record patch",
        ),
        (lambda e, c: {"records": [None]}, "malformed record patch"),
    ],
    ids=[
        "raises",
        "null",
        "records not a list",
        "key not a string",
        "bad op",
        "value not a string",
        "sync count a string",
        "sync count a fraction",
        "bad date",
        "null record",
    ],
)
async def test_a_failing_or_malformed_trigger_fails_the_push(  # type: ignore[no-untyped-def]
    alice, trigger_lambda: LambdaEndpoint, handler, message: str
) -> None:
    trigger_lambda.handler = handler
    with pytest.raises(GraphQLFailure) as caught:
        await push(alice, "d", [patch("k", "v")])
    assert caught.value.error_type == "InternalFailure"
    assert message in caught.value.first["message"]
    assert "hunter2" not in caught.value.first["message"]
    assert await datasets(alice) == {}


def test_the_client_reports_a_failing_trigger_as_a_server_error(
    aws_trigger_backend: SimulatorBackend, trigger_lambda: LambdaEndpoint, tmp_path: Path
) -> None:
    trigger_lambda.handler = _fails
    logins = aws_trigger_backend.logins(f"failing-{uuid.uuid4().hex[:8]}")
    with Client(aws_trigger_backend.config, db_path=tmp_path / "c.db", logins=logins) as device:
        device.dataset("d").put("k", "v")
        with pytest.raises(ServerError, match="InternalFailure: the sync trigger failed"):
            device.dataset("d").synchronize()
        assert device.dataset("d").record("k").dirty  # type: ignore[union-attr]


def test_deleting_a_dataset_does_not_invoke_the_trigger(
    aws_trigger_backend: SimulatorBackend, trigger_lambda: LambdaEndpoint, tmp_path: Path
) -> None:
    logins = aws_trigger_backend.logins(f"deleting-{uuid.uuid4().hex[:8]}")
    with Client(aws_trigger_backend.config, db_path=tmp_path / "c.db", logins=logins) as device:
        device.dataset("d").put("k", "v")
        device.dataset("d").synchronize()
        device.dataset("d").delete()
        device.dataset("d").synchronize()
    assert len(trigger_lambda.invocations) == 1


def test_without_the_parameter_the_default_stack_has_no_trigger(
    aws_backend: SimulatorBackend, tmp_path: Path
) -> None:
    logins = aws_backend.logins(f"plain-{uuid.uuid4().hex[:8]}")
    with Client(aws_backend.config, db_path=tmp_path / "p.db", logins=logins) as device:
        device.dataset("scores").put("shout", "hello")
        device.dataset("scores").put("forbidden", "x")
        assert device.dataset("scores").synchronize().sync_count == 1
        assert device.dataset("scores").get("shout") == "hello"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--parameter", f"SyncTriggerFunctionArn={SYNC_TRIGGER_ARN}"],
            f"the template invokes Lambda {SYNC_TRIGGER_ARN}: give --lambda-endpoint URL",
        ),
        (["--parameter", "NoSuchParameter=1"], "not template parameters: NoSuchParameter"),
        (
            ["--parameter", "SyncTriggerFunctionArn=check-scores"],
            "parameter SyncTriggerFunctionArn=check-scores does not match",
        ),
        (["--parameter", "AllowGuests"], "--parameter AllowGuests: use NAME=VALUE"),
    ],
)
def test_the_launcher_refuses_a_trigger_stack_it_cannot_run(
    aws_backend: SimulatorBackend, tmp_path: Path, options: list[str], message: str
) -> None:
    result = subprocess.run(
        [
            *(aws_backend.node, str(SIMULATOR_DIR / "launch.js")),
            *("--template", str(SCHEMA_DIR / "template.yaml")),
            *("--dynamodb-endpoint", aws_backend.dynamodb_endpoint),
            *("--identity-map", str(aws_backend.identity_map)),
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert message in result.stderr
