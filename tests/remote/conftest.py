"""Fixtures: a real `EmbeddedServer` on 127.0.0.1 port 0 and clients pointed at it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from cogsync.server.runner import EmbeddedServer


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EmbeddedServer]:
    async with EmbeddedServer(tmp_path / "server") as running:
        yield running


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def admin_client(server: EmbeddedServer) -> Any:
    """A boto3 cognito-identity client signed with the server's admin key."""
    admin = server.admin_credentials
    return boto3.session.Session().client(
        "cognito-identity",
        region_name=server.config.region,
        endpoint_url=server.config.identity_endpoint,
        aws_access_key_id=admin.access_key_id,
        aws_secret_access_key=admin.secret_access_key,
    )


async def developer_token(
    server: EmbeddedServer, user: str, identity_id: str | None = None
) -> tuple[str, str]:
    """(identity id, OpenID token) for a developer user, as an app's backend gets them.

    boto3 blocks, and the server shares the test's event loop: the call runs in a thread.
    """
    params: dict[str, Any] = {
        "IdentityPoolId": server.config.identity_pool_id,
        "Logins": {server.developer_provider: user},
    }
    if identity_id is not None:
        params["IdentityId"] = identity_id
    client = admin_client(server)
    answer = await asyncio.to_thread(client.get_open_id_token_for_developer_identity, **params)
    return answer["IdentityId"], answer["Token"]
