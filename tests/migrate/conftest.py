"""Fixtures for `cogsync migrate`: a populated fake Cognito, a real embedded server."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_cognito import FakeCognito, FakeCognitoServer
from migrate_cli import BIG_KEY, max_size_value

from cogsync.server.runner import EmbeddedServer


def populate(fake: FakeCognito, identities: int, *, seed: int = 7) -> list[str]:
    """Fill ``fake`` with identities holding unicode, tombstones, merged and big datasets;
    every fourth identity is developer-authenticated (``user-<n>``, some with aliases)."""
    rng = random.Random(seed)
    ids = [fake.new_identity() for _ in range(identities)]
    for n, identity_id in enumerate(ids):
        fake.update(identity_id, "settings", {"theme": "dark", "名前": "ユーザー😀", "n": str(n)})
        fake.update(identity_id, "settings", {"n": str(n + 1), "gone": "soon"})
        fake.update(identity_id, "settings", {"gone": None})  # a tombstone
        for batch in range(rng.randint(0, 3)):
            records = {f"k{batch}-{i}": f"v{rng.random()}" for i in range(rng.randint(1, 12))}
            fake.update(identity_id, f"game_{batch}", records)
        if n % 10 == 3:
            merged_from = ids[n - 1]
            fake.update(identity_id, f"settings.{merged_from}", {"theme": "light"})
        if n % 4 == 1:  # developer-authenticated; some with several user ids (paged lookups)
            fake.link_developer(identity_id, f"user-{n}")
            for alias in range(3 if n % 8 == 1 else 0):
                fake.link_developer(identity_id, f"alias-{alias}@user-{n}")
    fake.update(ids[0], "blob", {BIG_KEY: max_size_value(BIG_KEY)})
    return ids


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Developer credentials for boto3, isolated from the user's AWS configuration."""
    env = {
        "AWS_ACCESS_KEY_ID": "AKIDMIGRATIONTEST",
        "AWS_SECRET_ACCESS_KEY": "secret-for-tests",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def fake() -> FakeCognito:
    """A fake pool with 130 identities (three ListIdentities pages of 60)."""
    state = FakeCognito()
    populate(state, 130)
    return state


@pytest.fixture
def cognito(fake: FakeCognito) -> Iterator[FakeCognitoServer]:
    """The fake pool served over HTTP on 127.0.0.1."""
    with FakeCognitoServer(fake) as server:
        yield server
    assert fake.shape_errors == []


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A real `cogsync serve` on 127.0.0.1 (own event-loop thread)."""
    with EmbeddedServer(tmp_path / "server") as srv:
        yield srv
