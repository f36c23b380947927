"""Connection-level bounds and startup errors of a real `cogsync serve`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from server_wire import SERVER_INFO, new_identity, signed_post
from test_realtime import receive, subprotocol_header

from cogsync.server.bounds import ServerLimits
from cogsync.server.runner import EmbeddedServer

HALF_HEAD = b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: app"


@pytest.fixture
async def tight(tmp_path: Path) -> AsyncIterator[EmbeddedServer]:
    limits = ServerLimits(max_connections=5, header_timeout=0.5, body_timeout=0.5)
    async with EmbeddedServer(tmp_path / "data", server_limits=limits) as srv:
        yield srv


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


async def answer_of(reader: asyncio.StreamReader) -> tuple[int, dict[str, object]]:
    """Status and JSON body of a raw HTTP answer read until the server closes."""
    raw = await asyncio.wait_for(reader.read(), 5)  # until EOF: the server closes
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_connection_cap_and_header_timeout(tight: EmbeddedServer) -> None:
    stalled = [await asyncio.open_connection("127.0.0.1", tight.port) for _ in range(5)]
    for _, writer in stalled:
        writer.write(HALF_HEAD)  # a head that never ends
    await asyncio.sleep(0.1)
    reader, writer = await asyncio.open_connection("127.0.0.1", tight.port)
    status, body = await answer_of(reader)  # the sixth is refused at once
    await close(writer)
    assert status == 503 and body["errors"][0]["errorType"] == "ServiceUnavailable"  # type: ignore[index]

    started = time.monotonic()
    for reader, writer in stalled:  # each half-sent head is answered 408 and closed
        status, body = await answer_of(reader)
        assert status == 408 and body["errors"][0]["errorType"] == "RequestTimeout"  # type: ignore[index]
        await close(writer)
    assert time.monotonic() - started < 5
    await asyncio.sleep(0.1)
    _, creds = await new_identity(tight)  # served again once they are gone
    status, raw = await signed_post(tight, creds, json.dumps({"query": SERVER_INFO}).encode())
    assert status == 200 and json.loads(raw)["data"]["serverInfo"]


async def test_a_late_body_is_answered_408_and_closed(tight: EmbeddedServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", tight.port)
    writer.write(b'POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"qu')
    status, body = await answer_of(reader)
    await close(writer)
    assert status == 408 and body == {
        "errors": [
            {
                "errorType": "RequestTimeout",
                "message": "the request body did not arrive within 0.5 seconds",
            }
        ]
    }


async def test_keep_alive_requests_and_websockets_are_not_timed_out(
    tight: EmbeddedServer,
) -> None:
    _, creds = await new_identity(tight)
    body = json.dumps({"query": SERVER_INFO}).encode()
    for _ in range(3):  # idle between requests longer than the head timeout
        status, _ = await signed_post(tight, creds, body)
        assert status == 200
        await asyncio.sleep(0.6)
    protocols = ["graphql-ws", subprotocol_header(tight, creds)]
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(tight.config.realtime_url, protocols=protocols) as ws,
    ):
        await asyncio.sleep(0.8)  # a quiet WebSocket outlives the head timeout
        await ws.send_str(json.dumps({"type": "connection_init"}))
        assert (await receive(ws))["type"] == "connection_ack"


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("sync.db", lambda p: p.write_bytes(b"\x8f garbage " * 500)),
        ("identity.db", lambda p: p.write_bytes(b"\x8f garbage " * 500)),
        ("admin.json", lambda p: p.mkdir()),
        ("sync.db", lambda p: p.mkdir()),
    ],
    ids=["garbage-sync-db", "garbage-identity-db", "admin-json-directory", "sync-db-directory"],
)
def test_a_broken_data_directory_is_one_line_and_a_nonzero_exit(
    tmp_path: Path, name: str, make: object
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    make(data / name)  # type: ignore[operator]
    config = str(tmp_path / "cogsync.json")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cogsync.cli",
            "serve",
            "--data",
            str(data),
            "--port",
            "0",
            "--config-out",
            config,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0], done.stderr
    assert "Traceback" not in done.stderr
