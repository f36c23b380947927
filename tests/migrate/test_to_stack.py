"""`cogsync migrate --to-stack`: fake Cognito over HTTP -> a stack's table in moto server.

The table is created from template.yaml's definition and named by a moto CloudFormation
stack's ``TableName`` output; contents are read back with the resolvers' algorithm
(`stack_table.TableReader`), independently of the code that wrote them.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest
from fake_cognito import FakeCognito, FakeCognitoServer
from migrate_cli import BIG_KEY, max_size_value
from stack_table import TableReader, deploy, moto_server, point_boto_at

from cogsync.exceptions import (
    DatasetLimitExceededError,
    DatasetSizeLimitExceededError,
    LimitExceededError,
    RecordLimitExceededError,
)
from cogsync.limits import Limits
from cogsync.migrate import main
from cogsync.migrate.dynamodb import DynamoTarget, _Conflict
from cogsync.migrate.dynamodb_items import CHUNK_CHARS
from cogsync.migrate.source import SourceRecord, SourceRecords
from cogsync.migrate.target import TargetDataset


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def fake() -> FakeCognito:
    """A smaller pool than the server tests' (every import is a few moto round trips)."""
    state = FakeCognito()
    ids = [state.new_identity() for _ in range(14)]
    for n, identity_id in enumerate(ids):
        state.update(identity_id, "settings", {"theme": "dark", "名前": "ユーザー😀", "n": str(n)})
        state.update(identity_id, "settings", {"n": str(n + 1), "gone": "soon"})
        state.update(identity_id, "settings", {"gone": None})  # a tombstone
        for batch in range(n % 4):
            records = {f"k{batch}-{i}": f"v{n}.{i}" for i in range(1 + (n * 7 + batch) % 12)}
            state.update(identity_id, f"game_{batch}", records)
        if n % 5 == 3:
            state.update(identity_id, f"settings.{ids[n - 1]}", {"theme": "light"})
    state.update(ids[0], "blob", {BIG_KEY: max_size_value(BIG_KEY)})
    return state


@pytest.fixture
def stack(
    aws_env: dict[str, str], moto: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, TableReader]:
    point_boto_at(monkeypatch, moto)
    name, table = deploy(moto)
    return name, TableReader(moto, table)


def args(cognito: FakeCognitoServer, stack: str, checkpoint: Path, *extra: str) -> list[str]:
    return [
        "--identity-pool-id",
        cognito.state.pool_id,
        "--region",
        "us-east-1",
        "--source-endpoint-url",
        cognito.url,
        "--to-stack",
        stack,
        "--checkpoint",
        str(checkpoint),
        *extra,
    ]


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def assert_same(fake: FakeCognito, table: TableReader) -> int:
    """Every source dataset reads back whole from the table; return how many were compared."""
    compared = 0
    for identity_id, datasets in fake.identities.items():
        live = 0
        for name, dataset in datasets.items():
            pulled = table.pull(identity_id, name)
            assert pulled["syncCount"] == dataset.sync_count and not pulled["deleted"]
            got = {r["k"]: r for r in pulled["records"]}
            assert set(got) == set(dataset.records), (identity_id, name)
            for key, record in dataset.records.items():
                r = got[key]
                assert (r["v"], r["c"], r.get("b")) == (
                    record.value,
                    record.sync_count,
                    record.modified_by,
                )
                assert (r["m"], r.get("d")) == (iso(record.modified), iso(record.device_modified))
            merged = sorted(n for n in datasets if n.startswith(name + "."))
            assert pulled["merged"] == merged
            live += 1
            compared += 1
        meta = table.get(f"d#{identity_id}", "#meta")
        assert (meta or {}).get("datasetCount", 0) == live
    return compared


def test_migration_into_the_stack_table(
    fake: FakeCognito,
    cognito: FakeCognitoServer,
    stack: tuple[str, TableReader],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, table = stack
    fake.throttle_every = 11
    checkpoint = tmp_path / "checkpoint.json"
    code = main(args(cognito, name, checkpoint, "--verify", "--concurrency", "4"))
    err = capsys.readouterr().err
    assert code == 0, err
    assert ", 0 differ" in err and "errors 0" in err
    total = sum(len(d) for d in fake.identities.values())
    assert assert_same(fake, table) == total

    # the 1 MB value sits in base64 chunk items of 300,000 characters, as the resolvers read
    owner = next(iter(fake.identities))
    blob = table.pull(owner, "blob")
    (big,) = blob["records"]
    assert big["v"] == max_size_value(BIG_KEY)
    encoded = len(base64.b64encode(big["v"].encode()))
    assert big["x"] == math.ceil(encoded / CHUNK_CHARS) > 1
    assert blob["item"]["sizeInBytes"] == 1_048_576 and blob["item"]["recordCount"] == 1
    # tombstones are indexed with size 0 and count for nothing
    settings = table.pull(owner, "settings")
    assert settings["item"]["idx"]["gone"][3] == 0
    assert settings["item"]["recordCount"] == len(
        [r for r in fake.identities[owner]["settings"].records.values() if r.value is not None]
    )

    # a second run finds nothing to copy and leaves every item as it was
    before = table.scan()
    code = main(args(cognito, name, checkpoint, "--verify"))
    err = capsys.readouterr().err
    assert code == 0, err
    assert "datasets 0," in err and ", 0 differ" in err
    assert table.scan() == before

    # a fresh checkpoint re-reads everything from 0: still nothing written
    code = main(args(cognito, name, tmp_path / "other.json"))
    assert code == 0, capsys.readouterr().err
    assert table.scan() == before

    # source changes: only those are copied, at their own sync counts; a deleted dataset
    # becomes a tombstone dataset
    ids = list(fake.identities)
    fake.update(ids[1], "settings", {"theme": "solarized", "new": "ü"})
    doomed = "game_1"
    doomed_keys = set(fake.identities[ids[2]][doomed].records)
    fake.delete(ids[2], doomed)
    code = main(args(cognito, name, checkpoint, "--verify"))
    err = capsys.readouterr().err
    assert code == 0, err
    assert "datasets 2," in err and ", 0 differ" in err
    assert_same(fake, table)
    gone = table.pull(ids[2], doomed)
    assert gone["deleted"] and {r["k"] for r in gone["records"]} == doomed_keys
    assert all(r["v"] is None for r in gone["records"])
    changed = table.pull(
        ids[1], "settings", last=fake.identities[ids[1]]["settings"].sync_count - 1
    )
    assert {r["k"] for r in changed["records"]} == {"theme", "new"}


def test_verify_reports_a_difference(
    fake: FakeCognito,
    cognito: FakeCognitoServer,
    stack: tuple[str, TableReader],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, table = stack
    assert main(args(cognito, name, tmp_path / "c.json")) == 0
    identity_id = next(iter(fake.identities))
    item = table.get(f"d#{identity_id}", "settings")
    assert item is not None
    del item["idx"]["theme"]  # the table loses a record behind migrate's back
    table.client.update_item(
        TableName=table.table,
        Key={"pk": {"S": f"d#{identity_id}"}, "sk": {"S": "settings"}},
        UpdateExpression="REMOVE idx.theme",
    )
    capsys.readouterr()
    code = main(args(cognito, name, tmp_path / "c.json", "--dry-run", "--verify"))
    err = capsys.readouterr().err
    assert code == 1
    assert f"differs: {identity_id}/settings" in err and ", 1 differ" in err


def record(key: str, value: str | None, count: int) -> SourceRecord:
    when = datetime(2024, 5, 1, 12, 0, count, 250000, tzinfo=UTC)
    return SourceRecord(key, value, count, when, "device-a", when)


def test_limits_are_enforced_with_typed_errors(stack: tuple[str, TableReader]) -> None:
    name, table = stack
    target = DynamoTarget(name, region="us-east-1", limits=Limits(max_records=3, max_datasets=2))
    identity_id = "us-east-1:00000000-0000-4000-8000-00000000000a"
    four = SourceRecords(4, tuple(record(f"k{i}", "v", i + 1) for i in range(4)))
    with pytest.raises(RecordLimitExceededError, match="limit is 3"):
        target.import_dataset(identity_id, "a", four)
    with pytest.raises(DatasetSizeLimitExceededError):
        target.import_dataset(
            identity_id, "a", SourceRecords(1, (record("k", "x" * 2_000_000, 1),))
        )
    assert table.partition(f"d#{identity_id}") == []  # nothing half-written
    one = SourceRecords(1, (record("k", "v", 1),))
    assert target.import_dataset(identity_id, "a", one) == 1
    assert target.import_dataset(identity_id, "b", one) == 1
    with pytest.raises(DatasetLimitExceededError, match="at most 2 datasets"):
        target.import_dataset(identity_id, "c", one)
    assert table.get(f"d#{identity_id}", "c") is None
    assert table.get(f"d#{identity_id}", "#meta") == {
        "pk": f"d#{identity_id}",
        "sk": "#meta",
        "datasetCount": 2,
    }


def test_restamps_changes_below_the_tables_sync_count(stack: tuple[str, TableReader]) -> None:
    """Once the table's dataset has moved past a record's count, changes get a new count."""
    name, table = stack
    target = DynamoTarget(name, region="us-east-1")
    identity_id = "us-east-1:00000000-0000-4000-8000-00000000000b"
    first = SourceRecords(5, (record("a", "1", 2), record("b", "2", 5)))
    assert target.import_dataset(identity_id, "d", first) == 2
    assert target.import_dataset(identity_id, "d", first) == 0  # idempotent
    # the source dataset was re-created: lower counts, one value changed
    again = SourceRecords(3, (record("a", "1", 2), record("b", "changed", 3)))
    assert target.import_dataset(identity_id, "d", again) == 1
    pulled = table.pull(identity_id, "d", last=5)
    assert pulled["syncCount"] == 6
    assert [(r["k"], r["v"], r["c"]) for r in pulled["records"]] == [("b", "changed", 6)]
    assert target.export_dataset(identity_id, "d").pairs == (("a", "1"), ("b", "changed"))
    # the superseded segment of count 5 became garbage (deleted in the same transaction)
    keys = {i["sk"] for i in table.partition(f"r#{identity_id}#d")}
    assert keys == {"s#0000000002#000", "s#0000000006#000"}
    # deleted at the source, then re-created: tombstones at 7, the revival above them
    assert target.import_dataset(identity_id, "d", SourceRecords(6, ()), deleted=True) == 2
    assert target.import_dataset(identity_id, "d", SourceRecords(6, ()), deleted=True) == 0
    gone = table.pull(identity_id, "d", last=6)
    assert gone["deleted"] and [(r["k"], r["v"]) for r in gone["records"]] == [
        ("a", None),
        ("b", None),
    ]
    assert table.get(f"d#{identity_id}", "#meta") == {
        "pk": f"d#{identity_id}",
        "sk": "#meta",
        "datasetCount": 0,
    }
    reborn = SourceRecords(1, (record("a", "new", 1),))
    assert target.import_dataset(identity_id, "d", reborn) == 1
    back = table.pull(identity_id, "d", last=7)
    assert back["syncCount"] == 8 and not back["deleted"]
    assert [(r["k"], r["v"], r["c"]) for r in back["records"]] == [("a", "new", 8)]
    assert target.export_dataset(identity_id, "d") == TargetDataset(
        True, 8, (("a", "new"), ("b", None))
    )
    assert table.get(f"d#{identity_id}", "#meta")["datasetCount"] == 1  # type: ignore[index]


def test_leftovers_of_an_interrupted_import_are_never_served(
    stack: tuple[str, TableReader],
) -> None:
    name, table = stack
    target = DynamoTarget(name, region="us-east-1")
    identity_id = "us-east-1:00000000-0000-4000-8000-00000000000c"
    pk = f"r#{identity_id}#e"
    assert target.import_dataset(identity_id, "e", SourceRecords(1, (record("a", "1", 1),))) == 1
    # a killed import wrote segment items above the dataset's sync count, never committed
    stray = {"k": "a", "c": 9, "i": 0, "m": "2024-01-01T00:00:00.000Z", "x": 0, "v": "stale"}
    for sk, count in (("s#0000000009#000", 9), ("s#0000000002#001", 2)):
        table.client.put_item(
            TableName=table.table,
            Item={
                "pk": {"S": pk},
                "sk": {"S": sk},
                "c": {"N": str(count)},
                "p": {"N": "0"},
                "recs": {
                    "L": [
                        {
                            "M": {
                                k: ({"N": str(v)} if isinstance(v, int) else {"S": v})
                                for k, v in stray.items()
                            }
                        }
                    ]
                },
            },
        )
    assert target.import_dataset(identity_id, "e", SourceRecords(2, (record("b", "2", 2),))) == 1
    pulled = table.pull(identity_id, "e")
    assert [(r["k"], r["v"]) for r in pulled["records"]] == [("a", "1"), ("b", "2")]
    keys = {i["sk"] for i in table.partition(pk)}
    assert "s#0000000009#000" not in keys  # above the new sync count: deleted at once
    assert pulled["item"]["gc"] in ([], ["s#0000000002#001"])


def test_a_stack_without_the_table_is_refused(
    aws_env: dict[str, str],
    moto: str,
    monkeypatch: pytest.MonkeyPatch,
    cognito: FakeCognitoServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_boto_at(monkeypatch, moto)
    for stack, expected in (
        ("no-such-stack", "cannot read stack 'no-such-stack'"),
        (deploy(moto, output=False)[0], "has no TableName output and no Table resource"),
        (deploy(moto, table="missing-table")[0], "table missing-table does not exist"),
    ):
        code = main(args(cognito, stack, tmp_path / "c.json"))
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and expected in lines[-1], lines
        assert not (tmp_path / "c.json").exists()


class _AppSyncEnvironment(BaseHTTPRequestHandler):
    """AppSync's GetGraphqlApiEnvironmentVariables for API ``api1`` (moto lacks it)."""

    def do_GET(self) -> None:
        known = self.path == "/v1/apis/api1/environmentVariables"
        body = {"environmentVariables": {"MAX_RECORDS": "2", "MAX_DATASETS": "5"}}
        data = json.dumps(body if known else {"message": "no such API"}).encode()
        self.send_response(200 if known else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


def test_limits_come_from_the_stacks_api(
    stack: tuple[str, TableReader], moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _AppSyncEnvironment) as appsync:
        Thread(target=appsync.serve_forever, daemon=True).start()
        monkeypatch.setenv("AWS_ENDPOINT_URL_APPSYNC", f"http://127.0.0.1:{appsync.server_port}")
        name, _ = deploy(moto, table=stack[1].table, api_id="api1")
        limits = DynamoTarget(name, region="us-east-1").limits
        other, _ = deploy(moto, table=stack[1].table, api_id="unknown")
        fallback = DynamoTarget(other, region="us-east-1").limits
        appsync.shutdown()
    assert limits == Limits(max_records=2, max_datasets=5)
    assert fallback == Limits()
    three = SourceRecords(3, tuple(record(f"k{i}", "v", i + 1) for i in range(3)))
    with pytest.raises(RecordLimitExceededError, match="limit is 2"):
        DynamoTarget(name, region="us-east-1", limits=limits).import_dataset(
            "us-east-1:00000000-0000-4000-8000-00000000000d", "f", three
        )


def test_a_concurrent_change_is_retried_on_fresh_state(stack: tuple[str, TableReader]) -> None:
    """The dataset item moved between read and commit: nothing applies, the retry does."""
    name, table = stack
    target = DynamoTarget(name, region="us-east-1")
    identity_id = "us-east-1:00000000-0000-4000-8000-00000000000e"
    assert target.import_dataset(identity_id, "g", SourceRecords(1, (record("a", "1", 1),))) == 1
    stale = target._load(identity_id, "g")
    assert target.import_dataset(identity_id, "g", SourceRecords(2, (record("b", "2", 2),))) == 1
    third = SourceRecords(3, (record("a", "3", 3),))
    with pytest.raises(_Conflict):
        target._import(identity_id, "g", third, stale)
    assert table.pull(identity_id, "g")["syncCount"] == 2
    assert target.import_dataset(identity_id, "g", third) == 1
    pulled = table.pull(identity_id, "g")
    assert [(r["k"], r["v"], r["c"]) for r in pulled["records"]] == [("b", "2", 2), ("a", "3", 3)]
    keys = sorted(i["sk"] for i in table.partition(f"r#{identity_id}#g"))
    assert keys == ["s#0000000002#000", "s#0000000003#000"]


def test_an_index_too_big_for_one_item_is_refused(stack: tuple[str, TableReader]) -> None:
    name, table = stack
    target = DynamoTarget(name, region="us-east-1")
    identity_id = "us-east-1:00000000-0000-4000-8000-00000000000f"
    removed = tuple(record(f"{i:05d}" + "k" * 120, None, 1) for i in range(3000))
    with pytest.raises(LimitExceededError, match="would index 3000 keys"):
        target.import_dataset(identity_id, "h", SourceRecords(1, removed))
    assert table.partition(f"r#{identity_id}#h") == []
    assert table.get(f"d#{identity_id}", "h") is None


def test_a_stack_of_another_identity_pool_is_refused_unless_allowed(
    aws_env: dict[str, str],
    moto: str,
    monkeypatch: pytest.MonkeyPatch,
    cognito: FakeCognitoServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_boto_at(monkeypatch, moto)
    other_pool = "us-east-1:99999999-0000-4000-8000-000000000009"
    for pool_id, expected in (
        (other_pool, f"serves identity pool {other_pool}, not the source pool"),
        (None, "has no IdentityPoolId output"),
    ):
        stack, table = deploy(moto, pool_id=pool_id)
        code = main(args(cognito, stack, tmp_path / "c.json"))
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2, lines
        assert len(lines) == 1 and expected in lines[0], lines
        assert "new identity ids" in lines[0] and "--allow-new-identity-ids" in lines[0]
        assert "ExistingIdentityPoolId=" in lines[0]
        assert not (tmp_path / "c.json").exists()
        assert TableReader(moto, table).scan() == []
    code = main(args(cognito, stack, tmp_path / "c.json", "--allow-new-identity-ids"))
    assert code == 0, capsys.readouterr().err
    assert TableReader(moto, table).scan() != []
