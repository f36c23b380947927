"""GraphQL over HTTP with gql's AIOHTTPTransport + AppSyncIAMAuthentication, unmodified."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from botocore.credentials import Credentials
from gql import gql
from gql.transport.exceptions import TransportQueryError
from server_wire import (
    DELETE,
    LIST_DATASETS,
    LIST_RECORDS,
    SERVER_INFO,
    SUBSCRIBE,
    http_client,
    identity_client,
    new_identity,
    op,
    push,
)

from cogsync.server.identity import COGNITO_PROVIDER as COGNITO
from cogsync.server.runner import EmbeddedServer


async def test_every_operation_over_http(server: EmbeddedServer) -> None:
    identity_id, creds = await new_identity(server)
    async with http_client(server, creds) as session:
        info = (await session.execute(gql(SERVER_INFO)))["serverInfo"]
        assert info == {
            "protocolVersion": 1,
            "maxDatasets": 20,
            "maxRecords": 1024,
            "maxDatasetBytes": 1_048_576,
            "maxKeyBytes": 128,
        }
        pushed = await session.execute(push("prefs", "req-1", {"theme": "dark", "n": "1"}))
        change = pushed["pushRecords"]
        assert (change["identityId"], change["syncCount"]) == (identity_id, 1)
        listed = await session.execute(gql(LIST_DATASETS))
        assert [(d["name"], d["recordCount"]) for d in listed["listDatasets"]["datasets"]] == [
            ("prefs", 2)
        ]
        page = (await session.execute(op(LIST_RECORDS, n="prefs", s=0)))["listRecords"]
        assert {r["key"]: r["value"] for r in page["records"]} == {"theme": "dark", "n": "1"}
        deleted = await session.execute(op(DELETE, n="prefs", r="req-2"))
        assert deleted["deleteDataset"]["deleted"] is True
        after = await session.execute(gql(LIST_DATASETS))
        assert [d["deleted"] for d in after["listDatasets"]["datasets"]] == [True]
        with pytest.raises(TransportQueryError) as exc:
            await session.execute(op(SUBSCRIBE, id=identity_id))
        assert exc.value.errors and exc.value.errors[0]["errorType"] == "BadRequestException"


async def test_guest_data_moves_to_the_identity_it_logs_in_to(server: EmbeddedServer) -> None:
    guest, guest_creds = await new_identity(server)
    async with http_client(server, guest_creds) as session:
        await session.execute(push("notes", "g-1", {"a": "1"}))

    def log_in() -> tuple[str, str]:
        admin = identity_client(server, admin=True)
        pool = server.config.identity_pool_id
        member, token = (
            admin.get_open_id_token_for_developer_identity(
                IdentityPoolId=pool, Logins={"login.cogsync.dev": "hana"}
            )[k]
            for k in ("IdentityId", "Token")
        )
        answer = identity_client(server).get_credentials_for_identity(
            IdentityId=guest, Logins={COGNITO: token}
        )
        assert answer["IdentityId"] == member
        return member, answer["Credentials"]

    member, creds = await asyncio.to_thread(log_in)
    assert member != guest
    member_creds = Credentials(creds["AccessKeyId"], creds["SecretKey"], creds["SessionToken"])
    async with http_client(server, member_creds) as session:
        listed = await session.execute(gql(LIST_DATASETS))
    names = [d["name"] for d in listed["listDatasets"]["datasets"]]
    assert names == [f"notes.{guest}"]


class _FailingService:
    async def execute(self, *_args: Any) -> dict[str, Any]:
        raise RuntimeError("storage exploded")

    async def subscribe(self, *_args: Any) -> AsyncIterator[dict[str, Any]]:
        raise RuntimeError("storage exploded")


async def test_unexpected_errors_become_internal_failure(tmp_path: Path) -> None:
    async with EmbeddedServer(
        tmp_path / "d", service=_FailingService(), refused=LookupError
    ) as srv:
        _, creds = await new_identity(srv)
        async with http_client(srv, creds) as session:
            with pytest.raises(TransportQueryError) as exc:
                await session.execute(gql(SERVER_INFO))
        assert exc.value.errors and exc.value.errors[0]["errorType"] == "InternalFailure"
        assert "storage exploded" not in str(exc.value)
        async with (
            aiohttp.ClientSession() as raw,
            raw.post(f"{srv.url}/", data=b"{}", headers={"X-Amz-Target": "x"}) as r,
        ):
            assert r.status == 400
            assert (await r.json(content_type=None))["__type"] == "UnknownOperationException"
