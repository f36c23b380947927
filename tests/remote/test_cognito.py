"""`CognitoIdentity` against the Cognito Identity API of a real `cogsync serve`."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.credentials import Credentials

from cogsync.auth.cognito import CognitoIdentity, IdentityNotFoundError
from cogsync.config import Config
from cogsync.exceptions import NotAuthorizedError, OfflineError
from cogsync.server.runner import EmbeddedServer
from tests.remote.conftest import developer_token

COGNITO = "cognito-identity.amazonaws.com"


async def test_guest_gets_an_identity_once_and_credentials(server: EmbeddedServer) -> None:
    seen: list[str] = []
    identity = CognitoIdentity(server.config, on_identity=seen.append)
    identity_id = await identity.get_identity_id()
    assert identity_id.startswith(f"{server.config.region}:")
    assert await identity.get_identity_id() == identity_id
    assert seen == [identity_id]
    creds = await identity.credentials()
    assert isinstance(creds, Credentials)
    assert creds.access_key and creds.secret_key and creds.token
    assert await identity.credentials() is creds  # fresh credentials are reused
    assert identity.expiration is not None
    assert identity.expiration > datetime.now(UTC) + timedelta(minutes=50)
    assert seen == [identity_id]


async def test_a_known_identity_id_is_reused(server: EmbeddedServer) -> None:
    first = CognitoIdentity(server.config)
    identity_id = await first.get_identity_id()
    seen: list[str] = []
    again = CognitoIdentity(server.config, identity_id=identity_id, on_identity=seen.append)
    await again.credentials()
    assert again.identity_id == identity_id
    assert seen == []


async def test_async_on_identity_is_awaited(server: EmbeddedServer) -> None:
    seen: list[str] = []

    async def remember(identity_id: str) -> None:
        seen.append(identity_id)

    identity = CognitoIdentity(server.config, on_identity=remember)
    assert seen == [await identity.get_identity_id()]


async def test_developer_authenticated_login(server: EmbeddedServer) -> None:
    identity_id, token = await developer_token(server, "alice")
    identity = CognitoIdentity(server.config, logins={COGNITO: token})
    assert await identity.get_identity_id() == identity_id
    assert (await identity.credentials()).access_key
    # A guest id is refused for an authenticated identity without its logins.
    with pytest.raises(NotAuthorizedError, match="log in again"):
        await CognitoIdentity(server.config, identity_id=identity_id).credentials()


async def test_guest_logging_in_links_its_identity(server: EmbeddedServer) -> None:
    guest = CognitoIdentity(server.config)
    guest_id = await guest.get_identity_id()
    await guest.credentials()
    linked_id, token = await developer_token(server, "bob", identity_id=guest_id)
    assert linked_id == guest_id
    guest.set_logins({COGNITO: token})
    await guest.credentials()
    assert guest.identity_id == guest_id
    assert guest.logins == {COGNITO: token}


async def test_guest_logging_in_to_an_existing_identity_switches_to_it(
    server: EmbeddedServer,
) -> None:
    owner_id, token = await developer_token(server, "carol")
    seen: list[str] = []
    device = CognitoIdentity(server.config, on_identity=seen.append)
    guest_id = await device.get_identity_id()
    device.set_logins({COGNITO: token})
    await device.credentials()
    assert device.identity_id == owner_id != guest_id
    assert seen == [guest_id, owner_id]


async def test_credentials_are_renewed_before_expiry(tmp_path: Path) -> None:
    now = [datetime.now(UTC)]
    async with EmbeddedServer(tmp_path / "srv", clock=lambda: now[0].timestamp()) as server:
        identity = CognitoIdentity(
            server.config, clock=lambda: now[0], refresh_margin=timedelta(minutes=5)
        )
        first = await identity.credentials()
        expiration = identity.expiration
        assert expiration is not None
        now[0] = expiration - timedelta(minutes=6)
        assert await identity.credentials() is first
        now[0] = expiration - timedelta(minutes=4)
        renewed = await identity.credentials()
        assert renewed.access_key != first.access_key
        assert identity.expiration is not None
        assert identity.expiration > now[0] + timedelta(minutes=50)
        assert await identity.credentials() is renewed


async def test_short_lived_server_credentials_are_renewed(tmp_path: Path) -> None:
    async with EmbeddedServer(tmp_path / "srv", credential_lifetime=2.0) as server:
        identity = CognitoIdentity(server.config, refresh_margin=timedelta(seconds=1))
        first = await identity.credentials()
        assert await identity.credentials() is first
        await asyncio.sleep(1.1)
        second = await identity.credentials()
        assert second.access_key != first.access_key


async def test_unknown_identity_is_reported_distinctly(server: EmbeddedServer) -> None:
    missing = f"{server.config.region}:00000000-0000-0000-0000-000000000000"
    identity = CognitoIdentity(server.config, identity_id=missing)
    with pytest.raises(IdentityNotFoundError) as caught:
        await identity.credentials()
    assert caught.value.identity_id == missing
    assert "forget the cached identity id" in str(caught.value)
    identity.forget_identity()
    await identity.credentials()
    assert identity.identity_id not in (None, missing)


async def test_forged_login_token_is_refused(server: EmbeddedServer) -> None:
    _, token = await developer_token(server, "dave")
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    identity = CognitoIdentity(server.config, logins={COGNITO: forged})
    with pytest.raises(NotAuthorizedError, match="log in again"):
        await identity.get_identity_id()


async def test_wrong_pool_is_refused_with_advice(server: EmbeddedServer) -> None:
    wrong = Config.from_dict(
        {
            **server.config.to_dict(),
            "identity_pool_id": "us-east-1:11111111-2222-3333-4444-555555555555",
        }
    )
    with pytest.raises(NotAuthorizedError, match="identity_pool_id"):
        await CognitoIdentity(wrong).get_identity_id()


async def test_guests_switched_off(tmp_path: Path) -> None:
    async with EmbeddedServer(tmp_path / "srv", allow_guests=False) as server:
        with pytest.raises(NotAuthorizedError):
            await CognitoIdentity(server.config).get_identity_id()


async def test_unreachable_identity_service_is_offline_quickly(
    server: EmbeddedServer, closed_port: int
) -> None:
    config = Config.from_dict(
        {**server.config.to_dict(), "identity_endpoint": f"http://127.0.0.1:{closed_port}/"}
    )
    started = time.monotonic()
    with pytest.raises(OfflineError, match="identity service") as caught:
        await CognitoIdentity(config).get_identity_id()
    assert time.monotonic() - started < 3.0
    assert caught.value.retryable
