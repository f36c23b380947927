"""`cogsync migrate` end to end: fake Cognito over HTTP -> a real `cogsync serve` -> a client."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
from fake_cognito import SYNC_MODEL, FakeCognito, FakeCognitoServer, check_shape
from migrate_cli import BIG_KEY, identity_admin, max_size_value, migrate_args

from cogsync import Client
from cogsync.migrate import add_parser, main, run
from cogsync.server.runner import EmbeddedServer

COGNITO_PROVIDER = "cognito-identity.amazonaws.com"


def live(fake: FakeCognito, identity_id: str, name: str) -> dict[str, str]:
    records = fake.identities[identity_id][name].records.values()
    return {r.key: r.value for r in records if r.value is not None}


def developer_client(server: EmbeddedServer, identity_id: str, user: str, db: Path) -> Client:
    """A device logged in as developer user ``user``, linked to the migrated identity."""
    token = identity_admin(server).get_open_id_token_for_developer_identity(
        IdentityPoolId=server.config.identity_pool_id,
        IdentityId=identity_id,
        Logins={"login.cogsync.dev": user},
    )["Token"]
    return Client(server.config, db_path=db, logins={COGNITO_PROVIDER: token})


def summary(err: str) -> str:
    return next(line for line in err.splitlines() if line.startswith("summary:"))


def test_the_fake_answers_in_botocore_shapes() -> None:
    shape = SYNC_MODEL.operation_model("ListRecords").output_shape
    assert check_shape(shape, {"Records": [{"Key": "a", "SyncCount": 1}], "Count": 1}) == []
    assert check_shape(shape, {"Records": [{"Key": "a", "Bogus": 1}]}) == [
        "$.Records[0]: unknown member Bogus"
    ]
    assert check_shape(shape, {"Count": "1"}) == ["$.Count: expected integer"]


def test_migration_then_a_device_reads_its_data(
    aws_env: dict[str, str],
    fake: FakeCognito,
    cognito: FakeCognitoServer,
    server: EmbeddedServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.throttle_every = 9
    checkpoint = tmp_path / "checkpoint.json"
    code = main(migrate_args(cognito, server, checkpoint, "--concurrency", "6", "--verify"))
    err = capsys.readouterr().err
    assert code == 0, err
    assert "verify: " in err and ", 0 differ" in err
    assert fake.throttled > 10  # both throttling errors were met and retried
    assert fake.requests["ListIdentities"] >= 3  # 130 identities: 3 pages of at most 60
    total_datasets = sum(len(d) for d in fake.identities.values())
    assert fake.requests["ListRecords"] > 2 * total_datasets  # records paged too
    assert f"datasets {total_datasets}," in summary(err)
    assert "identities 130/130" in summary(err) and "errors 0" in summary(err)

    ids = sorted(fake.identities)
    merged_owner = next(i for i in ids if any("." in n for n in fake.identities[i]))
    merged_name = next(n for n in fake.identities[merged_owner] if "." in n)
    with developer_client(server, merged_owner, "alice", tmp_path / "alice.db") as device:
        assert device.identity_id == merged_owner
        settings = device.dataset("settings")
        result = settings.synchronize()
        assert settings.get_all() == live(fake, merged_owner, "settings")
        assert settings.get("gone") is None
        assert settings.get("名前") == "ユーザー😀"
        assert result.sync_count == fake.identities[merged_owner]["settings"].sync_count
        assert merged_name in result.merged_dataset_names
        names = {d.name for d in device.refresh_dataset_metadata()}
        assert names == set(fake.identities[merged_owner])
        merged = device.dataset(merged_name)
        merged.synchronize()
        assert merged.get_all() == {"theme": "light"}
        settings.put("theme", "solarized")  # devices sync normally after the move
        assert settings.synchronize().pushed == 1

    big_owner = next(i for i in ids if "blob" in fake.identities[i])
    with developer_client(server, big_owner, "bob", tmp_path / "bob.db") as device:
        blob = device.dataset("blob")
        blob.synchronize()
        assert blob.get(BIG_KEY) == max_size_value(BIG_KEY)
        assert blob.size_in_bytes() == 1_048_576


def test_rerun_copies_only_the_changes(
    aws_env: dict[str, str],
    fake: FakeCognito,
    cognito: FakeCognitoServer,
    server: EmbeddedServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint = tmp_path / "checkpoint.json"
    args = migrate_args(cognito, server, checkpoint)
    assert main(args) == 0
    capsys.readouterr()
    assert server.storage is not None
    before = len(server.storage.read_changes(limit=100_000))

    ids = sorted(fake.identities)
    fake.update(ids[5], "settings", {"theme": "blue", "new": "x"})
    fake.update(ids[6], "settings", {"theme": None})
    fake.update(ids[7], "fresh", {"a": "1"})
    doomed = next(i for i in ids[10:] if "game_0" in fake.identities[i])
    doomed_keys = tuple(sorted(live(fake, doomed, "game_0")))
    fake.delete(doomed, "game_0")

    assert main([*args, "--verify"]) == 0
    err = capsys.readouterr().err
    changes = server.storage.read_changes(limit=100_000)[before:]
    assert sorted((c.identity_id, c.dataset_name, c.keys, c.deleted) for c in changes) == sorted(
        [
            (ids[5], "settings", ("new", "theme"), False),
            (ids[6], "settings", ("theme",), False),
            (ids[7], "fresh", ("a",), False),
            (doomed, "game_0", doomed_keys, True),
        ]
    )
    assert "records 4," in summary(err)  # 2 + 1 + 1 changed records read, nothing else
    state = json.loads(checkpoint.read_text())
    assert state["run"]["complete"] is True
    assert "game_0" not in state["datasets"][doomed]
    assert state["datasets"][ids[5]]["settings"] == fake.identities[ids[5]]["settings"].sync_count

    assert main(args) == 0  # nothing changed: nothing written
    assert len(server.storage.read_changes(limit=100_000)) == before + len(changes)


def test_dry_run_writes_nothing(
    aws_env: dict[str, str],
    cognito: FakeCognitoServer,
    server: EmbeddedServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint = tmp_path / "checkpoint.json"
    assert main(migrate_args(cognito, server, checkpoint, "--dry-run")) == 0
    err = capsys.readouterr().err
    assert "would copy " in err and "dry run: identities 130/130" in err
    assert not checkpoint.exists()
    assert server.storage is not None
    assert server.storage.read_changes() == []


def test_verify_reports_differences(
    aws_env: dict[str, str],
    fake: FakeCognito,
    cognito: FakeCognitoServer,
    server: EmbeddedServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = migrate_args(cognito, server, tmp_path / "checkpoint.json")
    assert main(args) == 0
    identity_id = sorted(fake.identities)[3]
    fake.update(identity_id, "settings", {"theme": "changed at the source"})
    capsys.readouterr()
    assert main([*args, "--dry-run", "--verify"]) == 1
    err = capsys.readouterr().err
    assert f"differs: {identity_id}/settings: same record counts" in err
    assert "1 differ" in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal(
    aws_env: dict[str, str], cognito: FakeCognitoServer, server: EmbeddedServer, tmp_path: Path
) -> None:
    parser = argparse.ArgumentParser(prog="cogsync")
    add_parser(parser.add_subparsers())  # how `cogsync migrate` is wired
    argv = ["migrate", *migrate_args(cognito, server, tmp_path / "cp.json", "--dry-run")]
    args = parser.parse_args(argv)
    terminal = _Terminal()
    assert run(args, out=terminal) == 0
    text = terminal.getvalue()
    assert "migrate: identities" not in text  # a rich bar, not plain lines
    assert "130/130" in text and "\x1b[" in text
