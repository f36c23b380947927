"""Developer logins carried to `cogsync serve`: after `cogsync migrate`, the app's backend
calls GetOpenIdTokenForDeveloperIdentity for a user id exactly as it did with Cognito and
gets the migrated identity id back, whose device then reads its data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from fake_cognito import FakeCognito, FakeCognitoServer
from migrate_cli import identity_admin, migrate_args

from cogsync import Client
from cogsync.migrate import main
from cogsync.server.runner import EmbeddedServer

OLD_PROVIDER = "login.example.app"


def live(fake: FakeCognito, identity_id: str, name: str) -> dict[str, str]:
    records = fake.identities[identity_id][name].records.values()
    return {r.key: r.value for r in records if r.value is not None}


def backend_token(server: EmbeddedServer, provider: str, user: str) -> dict[str, str]:
    """What the app's backend does: GetOpenIdTokenForDeveloperIdentity, no IdentityId."""
    answer = identity_admin(server).get_open_id_token_for_developer_identity(
        IdentityPoolId=server.config.identity_pool_id, Logins={provider: user}
    )
    return {"IdentityId": answer["IdentityId"], "Token": answer["Token"]}


@pytest.fixture
def same_name_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """`cogsync serve --developer-provider login.example.app` (the pool's own name)."""
    with EmbeddedServer(tmp_path / "server", developer_provider=OLD_PROVIDER) as srv:
        yield srv


def test_developer_users_log_in_to_their_migrated_identities(
    aws_env: dict[str, str],
    fake: FakeCognito,
    cognito: FakeCognitoServer,
    same_name_server: EmbeddedServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.lookup_page_cap = 2  # identities with 4 user ids take 2 pages
    code = main(migrate_args(cognito, same_name_server, tmp_path / "c.json", "--verify"))
    err = capsys.readouterr().err
    assert code == 0, err
    linked = sum(len(users) for users in fake.developer_users.values())
    assert f"developer logins {linked}," in err and ", 0 differ" in err
    assert f"linked as {OLD_PROVIDER} on the target" in err
    assert fake.requests["DescribeIdentityPool"] == 1
    developers = sorted(fake.developer_users)
    for identity_id in developers[:3]:
        for user in fake.developer_users[identity_id]:
            answer = backend_token(same_name_server, OLD_PROVIDER, user)
            assert answer["IdentityId"] == identity_id
        logins = {"cognito-identity.amazonaws.com": answer["Token"]}
        db = tmp_path / f"device-{identity_id.split(':')[1]}.db"
        with Client(same_name_server.config, db_path=db, logins=logins) as client:
            assert client.identity_id == identity_id
            settings = client.open_or_create_dataset("settings")
            settings.synchronize()
            assert settings.get_all() == live(fake, identity_id, "settings")
    # A user the pool never knew still gets a fresh identity, as with Cognito.
    fresh = backend_token(same_name_server, OLD_PROVIDER, "somebody-new")["IdentityId"]
    assert fresh not in fake.identities


def test_the_provider_is_renamed_to_the_servers(
    aws_env: dict[str, str],
    fake: FakeCognito,
    cognito: FakeCognitoServer,
    server: EmbeddedServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(migrate_args(cognito, server, tmp_path / "c.json"))
    err = capsys.readouterr().err
    assert code == 0, err
    assert "linked as login.cogsync.dev on the target (its --developer-provider)" in err
    identity_id = sorted(fake.developer_users)[0]
    user = fake.developer_users[identity_id][0]
    assert backend_token(server, "login.cogsync.dev", user)["IdentityId"] == identity_id
    with pytest.raises(ClientError, match="unknown developer provider"):
        backend_token(server, OLD_PROVIDER, user)


def test_verify_checks_the_links_and_a_rerun_adds_new_ones(
    aws_env: dict[str, str],
    fake: FakeCognito,
    cognito: FakeCognitoServer,
    server: EmbeddedServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint = tmp_path / "c.json"
    assert main(migrate_args(cognito, server, checkpoint)) == 0
    identity_id = sorted(fake.developer_users)[1]
    fake.link_developer(identity_id, "linked-after-the-first-run")
    capsys.readouterr()
    code = main(migrate_args(cognito, server, checkpoint, "--dry-run", "--verify"))
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"differs: developer logins of {identity_id}: 1 missing on the target" in err
    assert main(migrate_args(cognito, server, checkpoint, "--verify")) == 0
    owner = server.identity_db.identity_for_login("login.cogsync.dev", "linked-after-the-first-run")
    assert owner == identity_id


def test_a_user_linked_to_another_identity_is_reported_and_retried(
    aws_env: dict[str, str],
    fake: FakeCognito,
    cognito: FakeCognitoServer,
    server: EmbeddedServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    identity_id = sorted(fake.developer_users)[0]
    user = fake.developer_users[identity_id][0]
    squatter = backend_token(server, "login.cogsync.dev", user)["IdentityId"]
    checkpoint = tmp_path / "c.json"
    code = main(migrate_args(cognito, server, checkpoint))
    err = capsys.readouterr().err
    assert code == 1, err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert identity_id in line and squatter in line and "already linked" in line
    assert server.identity_db.login_subjects(identity_id, "login.cogsync.dev") == []
    server.identity_db.remove_identity(squatter)  # the operator resolves it; the rerun links
    assert main(migrate_args(cognito, server, checkpoint, "--verify")) == 0
    assert server.identity_db.identity_for_login("login.cogsync.dev", user) == identity_id


def test_a_pool_without_developer_provider_skips_the_lookups(
    aws_env: dict[str, str],
    fake: FakeCognito,
    cognito: FakeCognitoServer,
    server: EmbeddedServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.developer_provider = None
    assert main(migrate_args(cognito, server, tmp_path / "c.json", "--verify")) == 0
    assert "LookupDeveloperIdentity" not in fake.requests
    assert "developer logins 0," in capsys.readouterr().err
