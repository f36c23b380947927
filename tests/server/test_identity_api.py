"""The Cognito Identity JSON API of `cogsync serve`, driven by boto3's cognito-identity client."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws
from server_wire import Clock, identity_client, issue_credentials

from cogsync.config import Config
from cogsync.server.runner import EmbeddedServer

COGNITO = "cognito-identity.amazonaws.com"


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def developer_token(srv: EmbeddedServer, user: str, **extra: Any) -> tuple[str, str]:
    admin = identity_client(srv, admin=True)
    answer = admin.get_open_id_token_for_developer_identity(
        IdentityPoolId=srv.config.identity_pool_id, Logins={"login.cogsync.dev": user}, **extra
    )
    return answer["IdentityId"], answer["Token"]


def test_guest_flow_issues_temporary_credentials(threaded_server: EmbeddedServer) -> None:
    client = identity_client(threaded_server)
    pool = threaded_server.config.identity_pool_id
    first = client.get_id(IdentityPoolId=pool)["IdentityId"]
    second = client.get_id(IdentityPoolId=pool)["IdentityId"]
    assert first != second
    assert first.startswith("us-east-1:")
    answer = client.get_credentials_for_identity(IdentityId=first)
    creds = answer["Credentials"]
    assert answer["IdentityId"] == first
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["SecretKey"]) == 40
    assert len(creds["SessionToken"]) >= 64  # 384 random bits
    lifetime = creds["Expiration"] - datetime.now(UTC)
    assert timedelta(minutes=59) < lifetime <= timedelta(hours=1, seconds=1)


def test_developer_identity_same_login_same_identity(threaded_server: EmbeddedServer) -> None:
    client = identity_client(threaded_server)
    pool = threaded_server.config.identity_pool_id
    alice, token = developer_token(threaded_server, "alice")
    again, token2 = developer_token(threaded_server, "alice")
    bob, _ = developer_token(threaded_server, "bob")
    assert alice == again and alice != bob
    for t in (token, token2):
        assert client.get_id(IdentityPoolId=pool, Logins={COGNITO: t})["IdentityId"] == alice
    answer = client.get_credentials_for_identity(IdentityId=alice, Logins={COGNITO: token})
    assert answer["IdentityId"] == alice
    with pytest.raises(ClientError) as exc:
        client.get_credentials_for_identity(IdentityId=alice)
    assert error_code(exc) == "NotAuthorizedException"
    with pytest.raises(ClientError) as exc:
        client.get_credentials_for_identity(IdentityId=bob, Logins={COGNITO: token})
    assert error_code(exc) == "NotAuthorizedException"


def test_developer_identity_can_adopt_an_existing_identity(
    threaded_server: EmbeddedServer,
) -> None:
    guest, _ = issue_credentials(threaded_server)
    linked, _ = developer_token(threaded_server, "carol", IdentityId=guest)
    assert linked == guest
    with pytest.raises(ClientError) as exc:
        developer_token(threaded_server, "carol", IdentityId=issue_credentials(threaded_server)[0])
    assert error_code(exc) == "ResourceConflictException"


def test_admin_operations_need_the_admin_key(threaded_server: EmbeddedServer) -> None:
    pool = threaded_server.config.identity_pool_id
    with pytest.raises(ClientError) as exc:
        identity_client(threaded_server).get_open_id_token_for_developer_identity(
            IdentityPoolId=pool, Logins={"login.cogsync.dev": "mallory"}
        )
    assert error_code(exc) == "NotAuthorizedException"
    _, creds = issue_credentials(threaded_server)
    as_identity = boto3.client(
        "cognito-identity",
        endpoint_url=threaded_server.config.identity_endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.token,
    )
    with pytest.raises(ClientError) as exc:
        as_identity.list_identities(IdentityPoolId=pool, MaxResults=10)
    assert error_code(exc) == "NotAuthorizedException"
    with pytest.raises(ClientError) as exc:
        identity_client(threaded_server, admin=True).get_open_id_token_for_developer_identity(
            IdentityPoolId=pool, Logins={"other.provider": "x"}
        )
    assert error_code(exc) == "InvalidParameterException"


def test_no_guests_refuses_unauthenticated_access(tmp_path: Path) -> None:
    with EmbeddedServer(tmp_path / "d", allow_guests=False) as srv:
        client = identity_client(srv)
        with pytest.raises(ClientError) as exc:
            client.get_id(IdentityPoolId=srv.config.identity_pool_id)
        assert error_code(exc) == "NotAuthorizedException"
        assert "Unauthenticated access is not supported" in str(exc.value)
        identity_id, creds = issue_credentials(srv, {COGNITO: developer_token(srv, "dora")[1]})
        assert identity_id.startswith("us-east-1:") and creds.token


def test_errors_are_aws_shaped(threaded_server: EmbeddedServer) -> None:
    client = identity_client(threaded_server)
    pool = threaded_server.config.identity_pool_id
    cases = [
        (lambda: client.get_id(IdentityPoolId="us-east-1:nope"), "ResourceNotFoundException"),
        (
            lambda: client.get_credentials_for_identity(
                IdentityId="us-east-1:00000000-0000-0000-0000-000000000000"
            ),
            "ResourceNotFoundException",
        ),
        (
            lambda: client.get_id(IdentityPoolId=pool, Logins={COGNITO: "x.y.z"}),
            "NotAuthorizedException",
        ),
        (
            lambda: client.get_id(IdentityPoolId=pool, Logins={"accounts.example.com": "t"}),
            "NotAuthorizedException",
        ),
        (
            lambda: identity_client(threaded_server, admin=True).list_identities(
                IdentityPoolId=pool, MaxResults=5, NextToken="%%%"
            ),
            "InvalidParameterException",
        ),
    ]
    for call, code in cases:
        with pytest.raises(ClientError) as exc:
            call()
        assert error_code(exc) == code
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_expired_developer_token_is_refused(threaded_server: EmbeddedServer, clock: Clock) -> None:
    _, token = developer_token(threaded_server, "erin", TokenDuration=60)
    clock.offset = 120
    with pytest.raises(ClientError) as exc:
        identity_client(threaded_server).get_id(
            IdentityPoolId=threaded_server.config.identity_pool_id, Logins={COGNITO: token}
        )
    assert error_code(exc) == "NotAuthorizedException"
    assert "expired" in str(exc.value)


def test_open_id_token_logs_the_same_identity_in(threaded_server: EmbeddedServer) -> None:
    client = identity_client(threaded_server)
    dora, developer = developer_token(threaded_server, "dora")
    token = client.get_open_id_token(IdentityId=dora, Logins={COGNITO: developer})["Token"]
    pool = threaded_server.config.identity_pool_id
    assert client.get_id(IdentityPoolId=pool, Logins={COGNITO: token})["IdentityId"] == dora


def test_describe_and_list_identities_paged(threaded_server: EmbeddedServer) -> None:
    admin = identity_client(threaded_server, admin=True)
    pool = threaded_server.config.identity_pool_id
    made = {issue_credentials(threaded_server)[0] for _ in range(4)}
    dev, _ = developer_token(threaded_server, "frank")
    made.add(dev)
    seen: list[str] = []
    kwargs: dict[str, Any] = {}
    pages = 0
    while True:
        page = admin.list_identities(IdentityPoolId=pool, MaxResults=2, **kwargs)
        assert len(page["Identities"]) <= 2
        seen += [i["IdentityId"] for i in page["Identities"]]
        pages += 1
        if "NextToken" not in page:
            break
        kwargs = {"NextToken": page["NextToken"]}
    assert pages == 3 and sorted(seen) == sorted(made)
    described = admin.describe_identity(IdentityId=dev)
    assert described["Logins"] == ["login.cogsync.dev"]
    assert isinstance(described["CreationDate"], datetime)


def test_oidc_id_token_from_a_user_pool(tmp_path: Path) -> None:
    region = "us-east-1"
    with mock_aws():
        idp = boto3.client("cognito-idp", region_name=region)
        pool_id = idp.create_user_pool(PoolName="users")["UserPool"]["Id"]
        client_id = idp.create_user_pool_client(
            UserPoolId=pool_id, ClientName="app", ExplicitAuthFlows=["USER_PASSWORD_AUTH"]
        )["UserPoolClient"]["ClientId"]
        idp.admin_create_user(UserPoolId=pool_id, Username="gina")
        idp.admin_set_user_password(
            UserPoolId=pool_id, Username="gina", Password="Secret-Pass-123", Permanent=True
        )

        def id_token() -> str:
            auth = idp.initiate_auth(
                ClientId=client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": "gina", "PASSWORD": "Secret-Pass-123"},
            )
            return str(auth["AuthenticationResult"]["IdToken"])

        tokens = [id_token(), id_token()]
        issuer = f"https://cognito-idp.{region}.amazonaws.com/{pool_id}"
        jwks = requests.get(f"{issuer}/.well-known/jwks.json", timeout=5).json()
    provider = issuer.removeprefix("https://")
    with EmbeddedServer(tmp_path / "d", oidc_issuers={issuer: jwks}) as srv:
        first, creds = issue_credentials(srv, {provider: tokens[0]})
        second, _ = issue_credentials(srv, {provider: tokens[1]})
        assert first == second and creds.token
        forged = tokens[0][:-4] + ("AAAA" if not tokens[0].endswith("AAAA") else "BBBB")
        with pytest.raises(ClientError) as exc:
            issue_credentials(srv, {provider: forged})
        assert error_code(exc) == "NotAuthorizedException"
        other = f"cognito-idp.{region}.amazonaws.com/us-east-1_other"
        with pytest.raises(ClientError) as exc:
            issue_credentials(srv, {other: tokens[0]})
        assert error_code(exc) == "NotAuthorizedException"
    # With the app's client id configured, the pool's tokens for that client still log in,
    # and tokens minted for any other client of the issuer are refused.
    with EmbeddedServer(
        tmp_path / "e", oidc_issuers={issuer: jwks}, oidc_client_ids=[client_id]
    ) as srv:
        identity, _ = issue_credentials(srv, {provider: tokens[0]})
        assert identity
    with EmbeddedServer(
        tmp_path / "f", oidc_issuers={issuer: jwks}, oidc_client_ids=["other-app"]
    ) as srv:
        with pytest.raises(ClientError) as exc:
            issue_credentials(srv, {provider: tokens[0]})
        assert error_code(exc) == "NotAuthorizedException"


def test_restart_keeps_pool_admin_key_and_identities(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = tmp_path / "cogsync.json"
    with EmbeddedServer(data, config_out=out) as srv:
        pool = srv.config.identity_pool_id
        admin = srv.admin_credentials
        alice, token = developer_token(srv, "alice")
        guest, _ = issue_credentials(srv)
        assert Config.load(out) == srv.config
    admin_file = data / "admin.json"
    assert stat.S_IMODE(os.stat(admin_file).st_mode) == 0o600
    assert json.loads(admin_file.read_text()) == {
        "access_key_id": admin.access_key_id,
        "secret_access_key": admin.secret_access_key,
    }
    with EmbeddedServer(data) as srv:
        assert srv.config.identity_pool_id == pool
        assert srv.admin_credentials == admin
        assert developer_token(srv, "alice")[0] == alice
        client = identity_client(srv)
        assert client.get_id(IdentityPoolId=pool, Logins={COGNITO: token})["IdentityId"] == alice
        assert client.get_credentials_for_identity(IdentityId=guest)["IdentityId"] == guest


def test_cogsync_serve_command(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "cogsync.json"
    command = [sys.executable, "-m", "cogsync.cli", "serve", "--port", "0", "--data", str(data)]
    process = subprocess.Popen(
        [*command, "--config-out", str(out), "--no-guests"], stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert "cogsync.serve: listening on http://127.0.0.1:" in first
        config = Config.load(out)
        assert config.graphql_url == first.split()[-1] + "/graphql"
        client = boto3.client(
            "cognito-identity",
            endpoint_url=config.identity_endpoint,
            region_name=config.region,
            aws_access_key_id="unused",
            aws_secret_access_key="unused",
        )
        with pytest.raises(ClientError) as exc:
            client.get_id(IdentityPoolId=config.identity_pool_id)
        assert error_code(exc) == "NotAuthorizedException"
        assert stat.S_IMODE(os.stat(data / "admin.json").st_mode) == 0o600
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        if process.stderr is not None:
            process.stderr.close()
    unpaired = ("--oidc-issuer", "https://a.example", "--oidc-issuer", "https://b.example")
    bad = subprocess.run(  # alone, an issuer uses OIDC discovery; with files, one per issuer
        [*command, *unpaired, "--jwks-file", str(tmp_path / "a.json")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2 and "--jwks-file" in bad.stderr
