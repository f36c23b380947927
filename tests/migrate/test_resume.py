"""A migration SIGKILLed at random moments and started again ends complete, nothing doubled."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from fake_cognito import FakeCognito, FakeCognitoServer
from migrate_cli import migrate_args

from cogsync.server.runner import EmbeddedServer


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cogsync.migrate", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_and_resume(
    kills: int,
    seed: int,
    aws_env: dict[str, str],
    fake: FakeCognito,
    cognito: FakeCognitoServer,
    server: EmbeddedServer,
    tmp_path: Path,
) -> None:
    rng = random.Random(seed)
    checkpoint = tmp_path / "checkpoint.json"
    args = migrate_args(cognito, server, checkpoint, "--concurrency", "2")
    fake.throttle_every = 13
    killed_early = 0
    for _ in range(kills):
        proc = _spawn(args, aws_env)
        time.sleep(rng.uniform(0.3, 1.6))
        if proc.poll() is None:
            proc.kill()
            killed_early += 1
        proc.communicate(timeout=30)
        if checkpoint.exists():  # always whole JSON: written to a temp file, then renamed
            state = json.loads(checkpoint.read_text())
            assert state["identityPoolId"] == fake.pool_id
    assert killed_early >= kills - 1, "the migration finished before it could be killed"
    final = _spawn([*args, "--verify"], aws_env)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err
    assert ", 0 differ" in err

    assert server.storage is not None
    changes = server.storage.read_changes(limit=1_000_000)
    per_dataset = Counter((c.identity_id, c.dataset_name) for c in changes)
    expected = {(i, n) for i, datasets in fake.identities.items() for n in datasets}
    assert set(per_dataset) == expected
    assert [k for k, n in per_dataset.items() if n != 1] == []  # each dataset written once
    for identity_id, name in list(expected)[:40]:
        page = server.storage.list_records(identity_id, name, 0)
        assert page.sync_count == fake.identities[identity_id][name].sync_count
    assert fake.developer_users and fake.requests.get("LookupDeveloperIdentity", 0) > 0
    for identity_id, users in fake.developer_users.items():  # every link carried over
        for user in users:
            assert server.identity_db.identity_for_login("login.cogsync.dev", user) == identity_id


def test_kill_and_resume_at_random_points(
    aws_env: dict[str, str],
    fake: FakeCognito,
    cognito: FakeCognitoServer,
    server: EmbeddedServer,
    tmp_path: Path,
) -> None:
    _kill_and_resume(3, 11, aws_env, fake, cognito, server, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_and_resume_many_times(
    seed: int,
    aws_env: dict[str, str],
    fake: FakeCognito,
    cognito: FakeCognitoServer,
    server: EmbeddedServer,
    tmp_path: Path,
) -> None:
    _kill_and_resume(8, seed, aws_env, fake, cognito, server, tmp_path)
