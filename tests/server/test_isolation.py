"""Identity isolation: identity B gets nothing of A's and changes nothing of A's."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from botocore.credentials import Credentials
from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from server_wire import (
    DELETE,
    LIST_DATASETS,
    LIST_RECORDS,
    SERVER_INFO,
    SUBSCRIBE,
    http_client,
    new_identity,
    op,
    push,
    ws_client,
)

from cogsync.server.runner import EmbeddedServer

SECRET = "a-secret-value"


async def snapshot(session: Client) -> dict[str, Any]:
    """Everything an identity can read: its dataset list and every dataset's records."""
    listed = (await session.execute(gql(LIST_DATASETS)))["listDatasets"]["datasets"]
    pages = {}
    for dataset in listed:
        page = await session.execute(op(LIST_RECORDS, n=dataset["name"], s=0))
        pages[dataset["name"]] = page["listRecords"]
    return {"datasets": listed, "records": pages}


async def test_b_reads_and_changes_nothing_of_a(server: EmbeddedServer) -> None:
    a_id, a_creds = await new_identity(server)
    b_id, b_creds = await new_identity(server)
    async with http_client(server, a_creds) as a, http_client(server, b_creds) as b:
        await a.execute(push("shared", "a-1", {"secret": SECRET, "other": "x"}))
        await a.execute(push("private", "a-2", {"k": SECRET}))
        before = await snapshot(a)

        answers: list[Any] = [
            await b.execute(gql(SERVER_INFO)),
            await b.execute(gql(LIST_DATASETS)),
            await b.execute(op(LIST_RECORDS, n="shared", s=0)),
            await b.execute(op(LIST_RECORDS, n="private", s=0)),
        ]
        for name, request_id in (("shared", "a-1"), ("private", "a-2")):  # a's very ids
            answers.append(await b.execute(push(name, request_id, {request_id: "b"})))
        answers.append(await b.execute(op(DELETE, n="private", r="b-8")))
        answers.append(await b.execute(op(DELETE, n="shared", r="b-9")))
        for answer in answers:
            text = json.dumps(answer)
            assert SECRET not in text and a_id not in text
        for answer in answers[4:]:
            change = next(iter(answer.values()))
            assert change["identityId"] == b_id
        with pytest.raises(TransportQueryError):  # no argument names an identity
            await b.execute(gql('query { listDatasets(identityId: "' + a_id + '") { nextToken } }'))
        assert await snapshot(a) == before
        seen_by_b = await snapshot(b)
        assert SECRET not in json.dumps(seen_by_b)
        assert {d["name"] for d in seen_by_b["datasets"]} == {"shared", "private"}


async def test_subscriptions_are_per_identity(server: EmbeddedServer) -> None:
    a_id, a_creds = await new_identity(server)
    b_id, b_creds = await new_identity(server)
    async with ws_client(server, b_creds) as b_ws:
        with pytest.raises(TransportQueryError) as exc:
            async for _ in b_ws.subscribe(op(SUBSCRIBE, id=a_id)):
                pytest.fail("B received an event of A")
        assert "UnauthorizedException" in str(exc.value)
    async with (
        ws_client(server, a_creds) as a_ws,
        ws_client(server, b_creds) as b_ws,
        http_client(server, a_creds) as a_http,
        http_client(server, b_creds) as b_http,
    ):
        a_events = a_ws.subscribe(op(SUBSCRIBE, id=a_id))
        b_events = b_ws.subscribe(op(SUBSCRIBE, id=b_id))
        a_next = asyncio.ensure_future(anext(a_events))
        b_next = asyncio.ensure_future(anext(b_events))
        await asyncio.sleep(0.2)
        await a_http.execute(push("shared", "a-1", {"k": SECRET}))
        a_event = await asyncio.wait_for(a_next, 5)
        assert a_event["onDatasetChanged"]["identityId"] == a_id
        await asyncio.sleep(0.3)
        assert not b_next.done()  # nothing of A's reached B
        await b_http.execute(push("shared", "b-1", {"k": "b"}))
        b_event = await asyncio.wait_for(b_next, 5)
        assert b_event["onDatasetChanged"] == {
            "identityId": b_id,
            "datasetName": "shared",
            "syncCount": 1,
            "deleted": False,
        }
        await a_events.aclose()
        await b_events.aclose()


async def test_credentials_decide_the_identity_not_arguments(server: EmbeddedServer) -> None:
    a_id, a_creds = await new_identity(server)
    _, b_creds = await new_identity(server)
    mixed = Credentials(b_creds.access_key, a_creds.secret_key, a_creds.token)
    async with http_client(server, mixed) as session:
        with pytest.raises(TransportQueryError) as exc:
            await session.execute(gql(LIST_DATASETS))
    assert exc.value.errors and exc.value.errors[0]["errorType"] in (
        "UnauthorizedException",
        "InvalidSignatureException",
    )
    async with http_client(server, b_creds) as b:
        with pytest.raises(TransportQueryError):
            await b.execute(
                op(
                    "mutation M($i: PushRecordsInput!) { pushRecords(input: $i) { syncCount } }",
                    i={
                        "datasetName": "x",
                        "clientRequestId": "r",
                        "deviceId": "d",
                        "protocolVersion": 1,
                        "identityId": a_id,
                        "records": [],
                    },
                )
            )
    async with http_client(server, a_creds) as a:
        assert (await a.execute(gql(LIST_DATASETS)))["listDatasets"]["datasets"] == []
