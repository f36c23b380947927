"""Delivering events leaves nothing behind: the objects the server holds stay flat."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import aiohttp
from server_wire import (
    http_client,
    new_identity,
    push,
    receive,
    start_message,
    subprotocol_header,
)

from cogsync.server.runner import EmbeddedServer


def live_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


async def test_objects_stay_flat_while_a_subscriber_receives_events(tmp_path: Path) -> None:
    async with EmbeddedServer(tmp_path / "data") as server:
        identity_id, creds = await new_identity(server)
        protocols = ["graphql-ws", subprotocol_header(server, creds)]
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(server.config.realtime_url, protocols=protocols) as ws,
            http_client(server, creds) as http,
        ):
            await ws.send_str(json.dumps({"type": "connection_init"}))
            assert (await receive(ws))["type"] == "connection_ack"
            await ws.send_str(start_message(server, creds, "s", identity_id))
            assert await receive(ws) == {"type": "start_ack", "id": "s"}

            async def deliver(first: int, count: int) -> None:
                for n in range(first, first + count):
                    await http.execute(push("leak", f"r-{n}", {f"k{n}": "v"}))
                    event = await receive(ws)
                    assert event["type"] == "data"
                    assert event["payload"]["data"]["onDatasetChanged"]["syncCount"] == n + 1

            await deliver(0, 30)  # warm up: caches, pools, first requests
            before = live_objects()
            events = 150
            await deliver(30, events)
            grown = live_objects() - before
    # The per-event executor memo left ~16 objects per event; allow noise well below that.
    assert grown < 2 * events, f"{grown} objects retained after {events} events"
