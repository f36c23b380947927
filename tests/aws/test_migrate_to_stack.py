"""`cogsync migrate --to-stack` read back through the resolvers on the AppSync simulator.

A fake Cognito Sync pool is migrated into the simulator's moto table (named by a moto
CloudFormation stack's ``TableName`` output); each migrated identity then pulls its data
with listRecords/listDatasets over GraphQL and pushes on top of it, as a device would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cogsync.migrate import main
from tests.aws.conftest import SimulatorBackend
from tests.aws.wire import GraphQLFailure, datasets, patch, pull_all, push
from tests.migrate.fake_cognito import FakeCognito, FakeCognitoServer
from tests.migrate.stack_table import deploy, point_boto_at

pytestmark = pytest.mark.aws

BIG = "é" * 1000 + "x" * (1_048_576 - 3 - 2000)  # key "big" + value = exactly 1 MB


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def pool() -> tuple[FakeCognito, list[str]]:
    fake = FakeCognito()
    ids = [fake.new_identity() for _ in range(3)]
    alice, bob, carol = ids
    fake.update(alice, "settings", {"theme": "dark", "名前": "ユーザー😀", "gone": "soon"})
    fake.update(alice, "settings", {"gone": None, "theme": "light"})
    fake.update(alice, f"settings.{carol}", {"theme": "merged"})
    fake.update(alice, "blob", {"big": BIG})
    for batch in range(4):
        fake.update(bob, "game", {f"k{batch}-{i}": f"v{batch}.{i}" for i in range(9)})
    fake.update(carol, "empty-ish", {"only": ""})
    return fake, ids


async def test_migrated_identities_pull_and_push_through_the_resolvers(
    aws_backend: SimulatorBackend,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint = aws_backend.dynamodb.meta.endpoint_url
    for name, value in (("AWS_ACCESS_KEY_ID", "cogsync-test"), ("AWS_SECRET_ACCESS_KEY", "x")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    point_boto_at(monkeypatch, endpoint)
    stack, _ = deploy(endpoint, table=aws_backend.tables["Table"])
    fake, ids = pool()
    with FakeCognitoServer(fake) as cognito:
        argv = [
            *("--identity-pool-id", fake.pool_id, "--region", "us-east-1"),
            *("--source-endpoint-url", cognito.url, "--to-stack", stack),
            *("--checkpoint", str(tmp_path / "checkpoint.json"), "--verify"),
        ]
        code = main(argv)
    err = capsys.readouterr().err
    assert code == 0, err
    assert ", 0 differ" in err

    for identity_id in ids:
        access_key, _ = aws_backend.identity(identity_id)
        client = aws_backend.client(access_key)
        listed = await datasets(client)
        source = fake.identities[identity_id]
        assert set(listed) == set(source)
        for name, dataset in source.items():
            page = await pull_all(client, name, limit=4)
            assert page["syncCount"] == dataset.sync_count and page["deleted"] is False
            merged = sorted(n for n in source if n.startswith(name + "."))
            assert page["mergedDatasetNames"] == merged
            got = {r["key"]: r for r in page["records"]}
            assert set(got) == set(dataset.records)
            for key, record in dataset.records.items():
                r = got[key]
                assert (r["value"], r["syncCount"], r["lastModifiedBy"]) == (
                    record.value,
                    record.sync_count,
                    record.modified_by,
                )
                assert r["lastModifiedDate"] == iso(record.modified)
                assert r["deviceLastModifiedDate"] == iso(record.device_modified)
            live = [r for r in dataset.records.values() if r.value is not None]
            assert listed[name]["recordCount"] == len(live)
            assert listed[name]["syncCount"] == dataset.sync_count

    # a device of a migrated identity carries on: pulls a delta, pushes on the sync counts
    alice = ids[0]
    client = aws_backend.client(aws_backend.identity(alice)[0])
    settings = fake.identities[alice]["settings"]
    delta = await pull_all(client, "settings", last=settings.sync_count - 1)
    assert {r["key"] for r in delta["records"]} == {"gone", "theme"}
    theme = settings.records["theme"].sync_count
    change = await push(client, "settings", [patch("theme", "blue", theme)])
    assert change["syncCount"] == settings.sync_count + 1
    with pytest.raises(GraphQLFailure) as refused:
        await push(client, "settings", [patch("名前", "x", 0)])
    assert refused.value.error_type == "ConflictException"
    page = await pull_all(client, "settings")
    values = {r["key"]: r["value"] for r in page["records"]}
    assert values == {"theme": "blue", "名前": "ユーザー😀", "gone": None}
