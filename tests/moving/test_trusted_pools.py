"""``--trust-identity-pool``: a token the old pool issued for X logs a device in as migrated X;
nothing else does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import rsa

from cogsync import Client
from cogsync.cli import build_parser
from cogsync.exceptions import ConfigError
from cogsync.server.admin import import_dataset
from cogsync.server.runner import EmbeddedServer
from cogsync.server.serve_options import server_kwargs
from cogsync.server.trusted_pools import TrustedPools, default_jwks_url, load_trusted_pools
from tests.moving.stand_in_pool import OLD_POOL, StandInPool

MIGRATED = "us-east-1:aaaaaaaa-0000-4000-8000-000000000001"
GUEST = "us-east-1:aaaaaaaa-0000-4000-8000-000000000002"
NEVER_MIGRATED = "us-east-1:bbbbbbbb-0000-4000-8000-000000000003"
COGNITO = "cognito-identity.amazonaws.com"


@pytest.fixture
def pool() -> StandInPool:
    return StandInPool()


@pytest.fixture
def server(tmp_path: Path, pool: StandInPool) -> Iterator[EmbeddedServer]:
    args = build_parser().parse_args(
        [
            *("serve", "--trust-identity-pool", OLD_POOL),
            *("--trusted-pool-jwks", str(pool.jwks_file(tmp_path / "jwks.json"))),
        ]
    )
    with EmbeddedServer(tmp_path / "data", **server_kwargs(args)) as srv:
        assert srv.storage is not None
        for identity_id, theme in ((MIGRATED, "dark"), (GUEST, "light")):
            body = {
                "identityId": identity_id,
                "datasetName": "settings",
                "syncCount": 3,
                "records": [{"key": "theme", "value": theme, "syncCount": 3}],
            }
            import_dataset(srv.storage, srv.identity_db, body, now=time.time())
        yield srv


def identity_client(server: EmbeddedServer) -> Any:
    return boto3.client(
        "cognito-identity",
        region_name="us-east-1",
        endpoint_url=server.url,
        aws_access_key_id="unsigned",
        aws_secret_access_key="unsigned",
    )


def test_a_token_of_the_old_pool_logs_a_device_in_as_the_migrated_identity(
    server: EmbeddedServer, pool: StandInPool, tmp_path: Path
) -> None:
    logins = {COGNITO: pool.token(MIGRATED)}
    with Client(server.config, db_path=tmp_path / "device.db", logins=logins) as client:
        assert client.identity_id == MIGRATED
        settings = client.open_or_create_dataset("settings")
        settings.synchronize()
        assert settings.get("theme") == "dark"
        settings.put("theme", "blue")
        settings.synchronize()
    # From now on the identity is authenticated here: its id alone is no longer enough.
    identity = identity_client(server)
    with pytest.raises(ClientError, match="it is authenticated"):
        identity.get_credentials_for_identity(IdentityId=MIGRATED)
    fresh = pool.token(MIGRATED)
    answer = identity.get_credentials_for_identity(IdentityId=MIGRATED, Logins={COGNITO: fresh})
    assert answer["IdentityId"] == MIGRATED
    assert server.identity_db.identity(MIGRATED).logins == (OLD_POOL,)  # type: ignore[union-attr]


def test_a_guest_token_of_the_old_pool_works_too(
    server: EmbeddedServer, pool: StandInPool, tmp_path: Path
) -> None:
    logins = {COGNITO: pool.token(GUEST, authenticated=False)}
    with Client(server.config, db_path=tmp_path / "device.db", logins=logins) as client:
        assert client.identity_id == GUEST
        settings = client.open_or_create_dataset("settings")
        settings.synchronize()
        assert settings.get("theme") == "light"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: p.token(MIGRATED, audience="us-east-1:0ther000-0000-4000-8000-000000000009"),
            "Invalid login token",
        ),
        (lambda p: p.token(MIGRATED, lifetime=-5), "Token expired"),
        (
            lambda p: p.token(
                MIGRATED, key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
            ),
            "Signature verification failed",
        ),
        (lambda p: p.token(NEVER_MIGRATED), "was not migrated to this server"),
    ],
    ids=["other-pool", "expired", "bad-signature", "never-migrated"],
)
def test_other_tokens_are_refused(
    server: EmbeddedServer, pool: StandInPool, make: Any, message: str
) -> None:
    identity = identity_client(server)
    token = make(pool)
    for call in (
        lambda: identity.get_id(
            IdentityPoolId=server.config.identity_pool_id, Logins={COGNITO: token}
        ),
        lambda: identity.get_credentials_for_identity(IdentityId=MIGRATED, Logins={COGNITO: token}),
    ):
        with pytest.raises(ClientError) as raised:
            call()
        assert raised.value.response["Error"]["Code"] == "NotAuthorizedException"
        assert message in raised.value.response["Error"]["Message"]
    assert server.identity_db.identity(NEVER_MIGRATED) is None
    assert server.identity_db.identity(MIGRATED).logins == ()  # type: ignore[union-attr]


def test_the_servers_own_tokens_still_work(server: EmbeddedServer, tmp_path: Path) -> None:
    with Client(server.config, db_path=tmp_path / "guest.db") as guest:
        guest.open_or_create_dataset("x").synchronize()
        assert guest.identity_id not in (MIGRATED, GUEST)


def test_options_are_checked(tmp_path: Path, pool: StandInPool) -> None:
    assert default_jwks_url("eu-west-1:abc") == (
        "https://cognito-identity.amazonaws.com/.well-known/jwks_uri"
    )
    jwks = str(pool.jwks_file(tmp_path / "jwks.json"))
    with pytest.raises(ConfigError, match="one --trusted-pool-jwks per"):
        load_trusted_pools([OLD_POOL, "us-east-1:0ab"], [jwks])
    with pytest.raises(ConfigError, match="is not REGION:GUID"):
        TrustedPools({"not a pool": {"keys": []}})
    with pytest.raises(ConfigError, match="cannot read JWKS"):
        load_trusted_pools([OLD_POOL], [str(tmp_path / "missing.json")])
    args = build_parser().parse_args(["serve", "--trusted-pool-jwks", jwks])
    with pytest.raises(ConfigError, match="needs --trust-identity-pool"):
        server_kwargs(args)
