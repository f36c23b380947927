"""Guests stay guests: OpenID tokens carry Cognito's ``amr`` and a guest's token is no login."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from server_wire import Clock, identity_client, issue_credentials

from cogsync.server.runner import EmbeddedServer

COGNITO = "cognito-identity.amazonaws.com"


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def refused(call: Any, **params: Any) -> str:
    with pytest.raises(ClientError) as exc:
        call(**params)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(exc.value.response["Error"]["Code"])


def assert_no_credentials(client: Any, identity_id: str, logins: dict[str, str]) -> None:
    """Neither credentials nor a token for ``identity_id`` with ``logins``."""
    for call in (client.get_credentials_for_identity, client.get_open_id_token):
        error = refused(call, IdentityId=identity_id, Logins=logins)
        assert error == "NotAuthorizedException", call


def legacy_guest_token(srv: EmbeddedServer, identity_id: str, now: float) -> str:
    """A token as servers before the fix gave a guest: it claimed to be authenticated."""
    key = serialization.load_pem_private_key(srv.identity_db.signing_key_pem, password=None)
    body = {
        "iss": f"https://{COGNITO}",
        "sub": identity_id,
        "aud": srv.config.identity_pool_id,
        "iat": int(now),
        "exp": int(now) + 86_400,
        "amr": ["authenticated", "authenticated"],
    }
    return jwt.encode(body, key, algorithm="RS256")  # type: ignore[arg-type]


def test_tokens_carry_the_authentication_type(tmp_path: Path) -> None:
    with EmbeddedServer(tmp_path / "d") as srv:
        client = identity_client(srv)
        pool = srv.config.identity_pool_id
        guest, _ = issue_credentials(srv)
        guest_token = client.get_open_id_token(IdentityId=guest)["Token"]
        assert claims(guest_token)["amr"] == ["unauthenticated"]
        admin = identity_client(srv, admin=True)
        developer = admin.get_open_id_token_for_developer_identity(
            IdentityPoolId=pool, Logins={"login.cogsync.dev": "dora"}
        )
        assert claims(developer["Token"])["amr"] == ["authenticated", "login.cogsync.dev"]
        renewed = client.get_open_id_token(
            IdentityId=developer["IdentityId"], Logins={COGNITO: developer["Token"]}
        )
        assert claims(renewed["Token"])["amr"] == ["authenticated", "login.cogsync.dev"]


def test_a_guest_token_is_never_a_login(tmp_path: Path, clock: Clock) -> None:
    data = tmp_path / "d"
    with EmbeddedServer(data, clock=clock) as srv:
        client = identity_client(srv)
        pool = srv.config.identity_pool_id
        guest, _ = issue_credentials(srv)
        token = client.get_open_id_token(IdentityId=guest)["Token"]
        legacy = legacy_guest_token(srv, guest, clock())
        for login in (token, legacy):
            logins = {COGNITO: login}
            error = refused(client.get_id, IdentityPoolId=pool, Logins=logins)
            assert error == "NotAuthorizedException"
            assert_no_credentials(client, guest, logins)
        # while guests are allowed, the guest itself still works without logins
        assert client.get_credentials_for_identity(IdentityId=guest)["IdentityId"] == guest
        dora = identity_client(srv, admin=True).get_open_id_token_for_developer_identity(
            IdentityPoolId=pool, Logins={"login.cogsync.dev": "dora"}
        )
    # After a restart with --no-guests nothing keeps the guest going, whatever it presents.
    with EmbeddedServer(data, allow_guests=False, clock=clock) as srv:
        client = identity_client(srv)
        for logins in ({}, {COGNITO: token}, {COGNITO: legacy}):
            assert_no_credentials(client, guest, logins)
        # an identity with a linked login keeps working and renewing its token
        logins = {COGNITO: dora["Token"]}
        answer = client.get_credentials_for_identity(IdentityId=dora["IdentityId"], Logins=logins)
        assert answer["IdentityId"] == dora["IdentityId"]
        renewed = client.get_open_id_token(IdentityId=dora["IdentityId"], Logins=logins)["Token"]
        assert claims(renewed)["amr"] == ["authenticated", "login.cogsync.dev"]
        again = client.get_credentials_for_identity(
            IdentityId=dora["IdentityId"], Logins={COGNITO: renewed}
        )
        assert again["IdentityId"] == dora["IdentityId"]
