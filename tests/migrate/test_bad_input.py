"""Bad input: each a one-line actionable error, a non-zero exit, nothing half-written."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from fake_cognito import FakeCognito, FakeCognitoServer
from migrate_cli import migrate_args

from cogsync.migrate import main
from cogsync.server.runner import EmbeddedServer


def error_line(err: str) -> str:
    """The single error line; fails if there is none or more than one."""
    lines = [line for line in err.splitlines() if line.startswith("cogsync migrate: error:")]
    assert len(lines) == 1, err
    return lines[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def replace_arg(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


@pytest.fixture
def args(
    aws_env: dict[str, str], cognito: FakeCognitoServer, server: EmbeddedServer, tmp_path: Path
) -> list[str]:
    return migrate_args(cognito, server, tmp_path / "checkpoint.json")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_unknown_pool(args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = replace_arg(args, "--identity-pool-id", "us-east-1:11111111-2222-3333-4444-555555555555")
    code, err = run(argv, capsys)
    assert code == 2
    assert "not found in us-east-1" in error_line(err)
    assert "check --identity-pool-id and --region" in error_line(err)
    assert not (tmp_path / "checkpoint.json").exists()


def test_malformed_pool_id(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(replace_arg(args, "--identity-pool-id", "not a pool"), capsys)
    assert code == 2
    assert "is not an identity pool id: expected REGION:GUID" in error_line(err)


def test_unreachable_source(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    code, err = run(replace_arg(args, "--source-endpoint-url", url), capsys)
    assert code == 2
    assert f"cannot reach Cognito at {url}" in error_line(err)


def test_missing_source_credentials(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, err = run(args, capsys)
    assert code == 2
    assert "no AWS credentials found for the source: set AWS_PROFILE" in error_line(err)


def test_wrong_admin_credentials(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "admin.json"
    wrong.write_text(json.dumps({"access_key_id": "AKIAWRONG", "secret_access_key": "nope"}))
    code, err = run(replace_arg(args, "--admin-credentials", str(wrong)), capsys)
    assert code == 2
    assert "refused the admin credentials" in error_line(err)


def test_unreadable_admin_credentials(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(replace_arg(args, "--admin-credentials", str(tmp_path / "nope")), capsys)
    assert code == 2
    assert "cannot read admin credentials" in error_line(err)


def test_unreachable_target(
    args: list[str], server: EmbeddedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads((server.data_dir / "cogsync.json").read_text())
    config["graphql_url"] = f"http://127.0.0.1:{closed_port()}/graphql"
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(config))
    code, err = run(replace_arg(args, "--to", str(moved)), capsys)
    assert code == 2
    assert "cannot reach the cogsync server" in error_line(err)


def test_checkpoint_of_another_pool(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = {"version": 1, "identityPoolId": "us-east-1:0", "target": "x", "datasets": {}}
    (tmp_path / "checkpoint.json").write_text(json.dumps(other))
    code, err = run(args, capsys)
    assert code == 2
    assert "pass another --checkpoint" in error_line(err)


def test_unreachable_stack_target_is_one_line(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", "http://127.0.0.1:9")
    argv = [*args[: args.index("--to")], "--to-stack", "prod"]
    code, err = run(argv, capsys)
    assert code == 2
    assert "cannot reach CloudFormation" in error_line(err)


def test_target_over_its_limits(
    args: list[str],
    fake: FakeCognito,
    server: EmbeddedServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    crowded = fake.new_identity()
    for n in range(21):
        fake.update(crowded, f"ds{n:02d}", {"k": "v"})
    fat = fake.new_identity()
    fake.update(fat, "huge", {"k": "é" * 600_000})  # 1.2 MB of UTF-8
    fake.update(fat, "small", {"k": "v"})
    code, err = run(args, capsys)
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2, err
    assert any(f"{crowded}/ds20" in e and "at most 20 datasets" in e for e in errors)
    assert any(f"{fat}/huge" in e and "1048576" in e for e in errors)
    state = json.loads((tmp_path / "checkpoint.json").read_text())
    assert "huge" not in state["datasets"][fat] and "small" in state["datasets"][fat]
    assert "ds20" not in state["datasets"][crowded]
    assert state["run"]["complete"] is False and fat not in state["run"]["done"]
    assert server.storage is not None
    assert server.storage.list_records(fat, "huge", 0).records == ()
    assert "errors 2" in err
