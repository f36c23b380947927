"""A logins function: called at first contact, again when a token is refused, never offline."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

import cogsync
from cogsync import AsyncClient, Client
from cogsync.demo import developer_login
from cogsync.server.runner import EmbeddedServer


def _login(server: EmbeddedServer, user: str, duration: int | None = None) -> dict[str, str]:
    key = server.admin_credentials
    return developer_login(
        server.config, key.access_key_id, key.secret_access_key, user, token_duration=duration
    )


_FIRST_TOKEN_SECONDS = 5


async def test_expired_token_is_replaced_and_sync_carries_on(tmp_path: Path) -> None:
    async with EmbeddedServer(tmp_path / "server", port=0, credential_lifetime=2) as server:
        calls: list[int] = []

        async def logins() -> dict[str, str]:
            # The first token lives a few seconds (long enough for a slow first sync,
            # which refetches the short-lived credentials on every request), later ones an hour.
            calls.append(1)
            duration = _FIRST_TOKEN_SECONDS if len(calls) == 1 else None
            return await asyncio.to_thread(_login, server, "gil", duration)

        async with AsyncClient(server.config, db_path=tmp_path / "d.db", logins=logins) as c:
            ds = await c.dataset("prefs")
            await ds.put("a", "1")
            assert calls == []  # nothing is called before the server is needed
            await ds.synchronize()
            assert len(calls) == 1
            await asyncio.sleep(_FIRST_TOKEN_SECONDS + 0.5)  # token and credentials have expired
            await ds.put("b", "2")
            await ds.synchronize()
            assert len(calls) == 2
            assert (await ds.status()).pending_changes == 0


async def test_refused_tokens_end_in_not_authorized_with_data_intact(tmp_path: Path) -> None:
    async with EmbeddedServer(tmp_path / "server", port=0) as server:
        calls: list[int] = []

        def refused() -> dict[str, str]:
            calls.append(1)
            return {"cognito-identity.amazonaws.com": "not-a-valid-token"}

        async with AsyncClient(server.config, db_path=tmp_path / "d.db", logins=refused) as c:
            ds = await c.dataset("prefs")
            await ds.put("a", "1")
            with pytest.raises(cogsync.NotAuthorizedError):
                await ds.synchronize()
            assert len(calls) == 2  # first contact, and once more after the refusal
            assert await ds.get_all() == {"a": "1"}
            assert (await ds.status()).pending_changes == 1


async def test_offline_nothing_is_called(tmp_path: Path) -> None:
    async with EmbeddedServer(tmp_path / "server", port=0) as server:
        dead = dataclasses.replace(server.config, identity_endpoint="http://127.0.0.1:9/")

    def never() -> dict[str, str]:
        raise AssertionError("called offline")

    async with AsyncClient(dead, db_path=tmp_path / "d.db", logins=never) as client:
        ds = await client.dataset("prefs")
        await ds.put("a", "1")
        assert await ds.get("a") == "1"


def test_blocking_client_takes_a_plain_function(tmp_path: Path) -> None:
    with EmbeddedServer(tmp_path / "server", port=0) as server:
        calls: list[int] = []

        def logins() -> dict[str, str]:
            calls.append(1)
            return _login(server, "hal")

        with Client(server.config, db_path=tmp_path / "d.db", logins=logins) as client:
            client.dataset("prefs").put("a", "1")
            client.synchronize("prefs")
            assert calls == [1]
            assert client.login(logins).startswith(server.config.region)
