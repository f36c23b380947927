"""The AppSync real-time endpoint with gql's AppSyncWebsocketsTransport and raw WebSockets."""

from __future__ import annotations

import asyncio
import json
import os
import random
from typing import Any

import aiohttp
import pytest
from botocore.credentials import Credentials
from gql.transport.exceptions import TransportServerError
from server_wire import (
    SUBSCRIBE,
    Clock,
    http_client,
    new_identity,
    op,
    push,
    receive,
    start_message,
    subprotocol_header,
    ws_client,
)

from cogsync.server.runner import EmbeddedServer


async def next_event(subscription: Any, timeout: float = 5.0) -> dict[str, Any]:
    result: dict[str, Any] = await asyncio.wait_for(anext(subscription), timeout)
    return result


async def test_gql_subscription_receives_a_push(server: EmbeddedServer) -> None:
    identity_id, creds = await new_identity(server)
    async with ws_client(server, creds) as ws, http_client(server, creds) as http:
        subscription = ws.subscribe(op(SUBSCRIBE, id=identity_id))
        waiting = asyncio.ensure_future(next_event(subscription))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await http.execute(push("prefs", "r-1", {"k": "v"}))
        event = (await waiting)["onDatasetChanged"]
        assert event == {
            "identityId": identity_id,
            "datasetName": "prefs",
            "syncCount": 1,
            "deleted": False,
        }
        await subscription.aclose()


async def test_subprotocol_auth_and_protocol_messages(server: EmbeddedServer) -> None:
    identity_id, creds = await new_identity(server)
    url = server.config.realtime_url.removesuffix("/realtime")  # /graphql upgrades too
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=["graphql-ws", subprotocol_header(server, creds)]) as ws,
    ):
        assert ws.protocol == "graphql-ws"
        await ws.send_str(json.dumps({"type": "connection_init"}))
        ack = await receive(ws)
        assert ack == {"type": "connection_ack", "payload": {"connectionTimeoutMs": 300000}}
        assert (await receive(ws, skip_ka=False))["type"] == "ka"
        assert (await receive(ws, skip_ka=False))["type"] == "ka"  # periodic
        await ws.send_str(start_message(server, creds, "sub-1", identity_id))
        assert await receive(ws) == {"type": "start_ack", "id": "sub-1"}
        await ws.send_str(start_message(server, creds, "sub-1", identity_id))
        duplicate = await receive(ws)
        assert duplicate["id"] == "sub-1"
        assert duplicate["payload"]["errors"][0]["errorType"] == "DuplicatedOperationError"
        async with http_client(server, creds) as http:
            await http.execute(push("prefs", "r-1", {"k": "v"}))
        data = await receive(ws)
        assert data["type"] == "data" and data["id"] == "sub-1"
        assert data["payload"]["data"]["onDatasetChanged"]["syncCount"] == 1
        await ws.send_str(json.dumps({"type": "stop", "id": "sub-1"}))
        assert await receive(ws) == {"type": "complete", "id": "sub-1"}


async def test_handshake_failures_get_connection_error(
    server: EmbeddedServer, clock: Clock
) -> None:
    _, creds = await new_identity(server)
    wrong = Credentials(creds.access_key, "x" * 40, creds.token)
    cases = [
        ([], "graphql-ws", "UnauthorizedException"),
        ([subprotocol_header(server, wrong)], "graphql-ws", "InvalidSignatureException"),
        (
            [subprotocol_header(server, creds)],
            "graphql-transport-ws",
            "SubProtocolNotSupportedError",
        ),
    ]
    async with aiohttp.ClientSession() as session:
        for extra, protocol, error_type in cases:
            protocols = [protocol, *extra]
            async with session.ws_connect(server.config.realtime_url, protocols=protocols) as ws:
                await ws.send_str(json.dumps({"type": "connection_init"}))
                message = await receive(ws)
                assert message["type"] == "connection_error"
                assert message["payload"]["errors"][0]["errorType"] == error_type
                closing = await asyncio.wait_for(ws.receive(), 5)
                assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    clock.offset = 3700  # the credentials expired: gql's connect fails cleanly
    with pytest.raises(TransportServerError, match=r"InvalidSignatureException|Expired"):
        async with ws_client(server, creds) as ws:
            pass


async def test_start_must_be_signed_by_the_connection_identity(server: EmbeddedServer) -> None:
    a_id, a_creds = await new_identity(server)
    _, b_creds = await new_identity(server)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            server.config.realtime_url,
            protocols=["graphql-ws", subprotocol_header(server, a_creds)],
        ) as ws,
    ):
        await ws.send_str(json.dumps({"type": "connection_init"}))
        assert (await receive(ws))["type"] == "connection_ack"
        await ws.send_str(start_message(server, b_creds, "1", a_id))
        refused = await receive(ws)
        assert refused["type"] == "error" and refused["id"] == "1"
        assert refused["payload"]["errors"][0]["errorType"] == "UnauthorizedException"
        tampered = json.loads(start_message(server, a_creds, "2", a_id))
        tampered["payload"]["data"] = tampered["payload"]["data"].replace(a_id, a_id.upper())
        await ws.send_str(json.dumps(tampered))
        error = await receive(ws)
        assert error["payload"]["errors"][0]["errorType"] == "InvalidSignatureException"


async def test_garbage_never_kills_the_server(server: EmbeddedServer) -> None:
    identity_id, creds = await new_identity(server)
    rng = random.Random(7)
    garbage = [
        "not json",
        "[]",
        "{}",
        json.dumps({"type": 5}),
        json.dumps({"type": "start"}),
        json.dumps({"type": "start", "id": "x", "payload": {"data": 3}}),
        json.dumps({"type": "start", "id": "y", "payload": {"data": "{}"}}),
        json.dumps({"type": "stop"}),
        json.dumps({"type": "warp"}),
        "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(200)),
    ]
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            server.config.realtime_url, protocols=["graphql-ws", subprotocol_header(server, creds)]
        ) as ws,
    ):
        await ws.send_str(json.dumps({"type": "connection_init"}))
        assert (await receive(ws))["type"] == "connection_ack"
        for text in garbage:
            await ws.send_str(text)
            assert (await receive(ws))["type"] == "error", text
        await ws.send_bytes(os.urandom(64))
        assert (await receive(ws))["payload"]["errors"][0]["errorType"] == "BadRequestException"
        await ws.send_str(start_message(server, creds, "ok", identity_id))
        assert (await receive(ws))["type"] == "start_ack"
    host, port = server.host, server.port
    for _ in range(3):  # raw bytes after a handshake, and instead of one
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(os.urandom(512))
        await writer.drain()
        await reader.read(1024)
        writer.close()
        await writer.wait_closed()
    async with ws_client(server, creds) as ws, http_client(server, creds) as http:
        subscription = ws.subscribe(op(SUBSCRIBE, id=identity_id))
        waiting = asyncio.ensure_future(next_event(subscription))
        await asyncio.sleep(0.2)
        await http.execute(push("after", "r-9", {"k": "v"}))
        assert (await waiting)["onDatasetChanged"]["datasetName"] == "after"
        await subscription.aclose()
