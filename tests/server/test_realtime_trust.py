"""Real-time connections end with their credentials and lifetime, within per-identity caps."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest
from botocore.credentials import Credentials
from server_wire import (
    Clock,
    http_client,
    identity_client,
    issue_credentials,
    new_identity,
    push,
    receive,
    start_message,
    subprotocol_header,
)

from cogsync.config import Config
from cogsync.server.app import REALTIME
from cogsync.server.realtime import RealtimeEndpoint
from cogsync.server.realtime_limits import RealtimeLimits
from cogsync.server.runner import EmbeddedServer

COGNITO = "cognito-identity.amazonaws.com"
FAST = 0.05  # seconds between deadline checks in these tests


def endpoint(srv: EmbeddedServer) -> RealtimeEndpoint:
    assert srv._runner is not None
    return srv._runner.app[REALTIME]


@asynccontextmanager
async def serving(tmp_path: Path, clock: Clock, **limits: Any) -> AsyncIterator[EmbeddedServer]:
    """A server issuing credentials for a minute (signatures allow 5 minutes of skew)."""
    realtime = RealtimeLimits(**{"check_interval": FAST, **limits})
    async with EmbeddedServer(
        tmp_path / "data", clock=clock, realtime=realtime, credential_lifetime=60
    ) as srv:
        yield srv


@asynccontextmanager
async def connected(
    srv: EmbeddedServer, creds: Credentials, *, init: bool = True
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A raw real-time connection (acknowledged unless ``init`` is False)."""
    protocols = ["graphql-ws", subprotocol_header(srv, creds)]
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(srv.config.realtime_url, protocols=protocols) as ws,
    ):
        if init:
            await ws.send_str(json.dumps({"type": "connection_init"}))
            assert (await receive(ws))["type"] == "connection_ack"
        yield ws


async def subscribed(
    srv: EmbeddedServer,
    ws: aiohttp.ClientWebSocketResponse,
    creds: Credentials,
    op_id: str,
    who: str,
) -> dict[str, Any]:
    await ws.send_str(start_message(srv, creds, op_id, who))
    return await receive(ws)


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Wait for the server to close the socket (skipping keep-alives); its close code."""
    while True:
        message = await asyncio.wait_for(ws.receive(), 5)
        if message.type == aiohttp.WSMsgType.CLOSE:
            return int(message.data)
        if message.type == aiohttp.WSMsgType.CLOSED:
            return ws.close_code
        assert json.loads(message.data)["type"] == "ka", message


async def silent(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> bool:
    """True if nothing but keep-alives arrive for ``seconds``."""
    try:
        message = await asyncio.wait_for(receive(ws), seconds)
    except TimeoutError:
        return True
    raise AssertionError(f"unexpected message {message}")


def fresh_credentials(srv: EmbeddedServer, identity_id: str) -> Credentials:
    answer = identity_client(srv).get_credentials_for_identity(IdentityId=identity_id)
    creds = answer["Credentials"]
    return Credentials(creds["AccessKeyId"], creds["SecretKey"], creds["SessionToken"])


def only_error(message: dict[str, Any], op_id: str) -> dict[str, Any]:
    assert message["type"] == "error" and message["id"] == op_id, message
    (error,) = message["payload"]["errors"]
    assert isinstance(error, dict)
    return error


async def test_an_idle_subscription_ends_when_its_credentials_expire(
    tmp_path: Path, clock: Clock
) -> None:
    async with serving(tmp_path, clock) as srv:
        identity_id, creds = await new_identity(srv)
        async with connected(srv, creds) as ws:
            assert (await subscribed(srv, ws, creds, "s1", identity_id))["type"] == "start_ack"
            assert await silent(ws, 0.3)  # live credentials: nothing happens
            clock.offset = 61
            error = only_error(await receive(ws), "s1")
            assert error["errorType"] == "UnauthorizedException" and error["errorCode"] == 401
            assert "expired" in error["message"]
            assert srv.sync_service is not None
            assert srv.sync_service.hub.subscriber_count(identity_id) == 0
            fresh = await asyncio.to_thread(fresh_credentials, srv, identity_id)
            async with http_client(srv, fresh) as http:
                await http.execute(push("prefs", "r-1", {"k": "v"}))
            assert await silent(ws, 0.3)  # the ended subscription hears nothing more
            # the same connection takes a start signed with the new credentials
            assert (await subscribed(srv, ws, fresh, "s2", identity_id))["type"] == "start_ack"


async def test_no_event_is_delivered_past_expiry(tmp_path: Path, clock: Clock) -> None:
    async with serving(tmp_path, clock, check_interval=600) as srv:  # no periodic check
        identity_id, creds = await new_identity(srv)
        async with connected(srv, creds) as ws:
            assert (await subscribed(srv, ws, creds, "s1", identity_id))["type"] == "start_ack"
            clock.offset = 61
            fresh = await asyncio.to_thread(fresh_credentials, srv, identity_id)
            async with http_client(srv, fresh) as http:
                await http.execute(push("prefs", "r-1", {"k": "v"}))
            error = only_error(await receive(ws), "s1")
            assert error["errorType"] == "UnauthorizedException"


async def test_a_merged_guest_loses_its_subscriptions_at_once(tmp_path: Path, clock: Clock) -> None:
    async with serving(tmp_path, clock, check_interval=600) as srv:
        guest, creds = await new_identity(srv)
        other, other_creds = await new_identity(srv)
        admin = identity_client(srv, admin=True)
        developer = await asyncio.to_thread(
            admin.get_open_id_token_for_developer_identity,
            IdentityPoolId=srv.config.identity_pool_id,
            Logins={"login.cogsync.dev": "dora"},
        )
        async with connected(srv, creds) as ws, connected(srv, other_creds) as bystander:
            assert (await subscribed(srv, ws, creds, "s1", guest))["type"] == "start_ack"
            assert (await subscribed(srv, bystander, other_creds, "o", other))["type"] == (
                "start_ack"
            )
            merged = await asyncio.to_thread(
                identity_client(srv).get_credentials_for_identity,
                IdentityId=guest,
                Logins={COGNITO: developer["Token"]},
            )
            assert merged["IdentityId"] == developer["IdentityId"]
            error = only_error(await receive(ws), "s1")
            assert error["errorType"] == "UnauthorizedException" and "revoked" in error["message"]
            assert await closed_with(ws) == 4401
            assert endpoint(srv).identities.connections(guest) == 0
            assert await silent(bystander, 0.2)  # another identity is untouched
            assert endpoint(srv).identities.subscriptions(other) == 1


async def test_a_connection_ends_24_hours_after_it_opened(tmp_path: Path, clock: Clock) -> None:
    async with serving(tmp_path, clock) as srv:
        assert srv.realtime.max_lifetime == 86_400  # AppSync's maximum
        _, creds = await new_identity(srv)
        async with connected(srv, creds) as ws:
            clock.offset = 86_000
            assert await silent(ws, 0.3)
            assert not ws.closed
            clock.offset = 86_401
            assert await closed_with(ws) == 1000


async def test_a_connection_without_connection_init_is_closed(tmp_path: Path, clock: Clock) -> None:
    async with serving(tmp_path, clock) as srv:
        assert srv.realtime.init_timeout == 10
        _, creds = await new_identity(srv)
        async with connected(srv, creds, init=False) as mute, connected(srv, creds) as polite:
            assert await silent(mute, 0.2)
            clock.offset = 11
            assert await closed_with(mute) == 4408
            assert await silent(polite, 0.2)
            assert not polite.closed


async def test_per_identity_caps_refuse_the_excess(tmp_path: Path, clock: Clock) -> None:
    caps = {
        "connections_per_identity": 3,
        "subscriptions_per_identity": 5,
        "subscriptions_per_connection": 4,
    }
    async with serving(tmp_path, clock, **caps) as srv:
        guest, creds = await new_identity(srv)
        other, other_creds = await new_identity(srv)
        async with (
            connected(srv, creds) as first,
            connected(srv, creds) as second,
            connected(srv, creds),
        ):
            async with connected(srv, creds, init=False) as excess:
                refusal = await receive(excess)
                assert refusal["type"] == "connection_error"
                (error,) = refusal["payload"]["errors"]
                assert error["errorType"] == "LimitExceededError" and error["errorCode"] == 429
                assert await closed_with(excess) is not None
            for n in range(4):
                assert (await subscribed(srv, first, creds, f"a{n}", guest))["type"] == "start_ack"
            per_connection = only_error(await subscribed(srv, first, creds, "a4", guest), "a4")
            assert per_connection["errorType"] == "MaxSubscriptionsReachedError"
            assert (await subscribed(srv, second, creds, "b0", guest))["type"] == "start_ack"
            per_identity = only_error(await subscribed(srv, second, creds, "b1", guest), "b1")
            assert per_identity["errorType"] == "MaxSubscriptionsReachedError"
            assert "identity" in per_identity["message"]
            assert srv.sync_service is not None
            assert srv.sync_service.hub.subscriber_count(guest) == 5
            # another identity is unaffected
            async with connected(srv, other_creds) as ws:
                assert (await subscribed(srv, ws, other_creds, "o", other))["type"] == "start_ack"
                async with http_client(srv, other_creds) as http:
                    await http.execute(push("prefs", "r-1", {"k": "v"}))
                assert (await receive(ws))["type"] == "data"
            # a stopped subscription frees its slot
            await second.send_str(json.dumps({"type": "stop", "id": "b0"}))
            assert await receive(second) == {"type": "complete", "id": "b0"}
            assert (await subscribed(srv, second, creds, "b2", guest))["type"] == "start_ack"
        # closed connections free theirs
        assert endpoint(srv).identities.connections(guest) == 0
        assert endpoint(srv).identities.subscriptions(guest) == 0
        async with connected(srv, creds) as again:
            assert (await subscribed(srv, again, creds, "c", guest))["type"] == "start_ack"


async def test_an_attack_of_one_identity_holds_bounded_state(tmp_path: Path, clock: Clock) -> None:
    caps = {"connections_per_identity": 4, "subscriptions_per_identity": 10}
    async with serving(tmp_path, clock, **caps) as srv:
        guest, creds = await new_identity(srv)
        async with aiohttp.ClientSession() as session:
            protocols = ["graphql-ws", subprotocol_header(srv, creds)]
            sockets = [
                await session.ws_connect(srv.config.realtime_url, protocols=protocols)
                for _ in range(12)
            ]
            for ws in sockets:
                await ws.send_str(json.dumps({"type": "connection_init"}))
            for n, ws in enumerate(sockets):
                for m in range(8):
                    await ws.send_str(start_message(srv, creds, f"{n}-{m}", guest))
            identities = endpoint(srv).identities
            deadline = asyncio.get_running_loop().time() + 30  # a busy machine is slow, not wrong
            while identities.subscriptions(guest) < 10 and (
                asyncio.get_running_loop().time() < deadline
            ):
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # the excess, answered by now, must not have added any
            assert endpoint(srv).identities.connections(guest) == 4
            assert endpoint(srv).identities.subscriptions(guest) == 10
            assert srv.sync_service is not None
            assert srv.sync_service.hub.subscriber_count(guest) == 10
            for ws in sockets:
                await ws.close()


@pytest.mark.parametrize(
    ("setting", "value"),
    [("max_lifetime", 0), ("connections_per_identity", 0), ("check_interval", float("nan"))],
)
def test_invalid_limits_are_a_config_error(setting: str, value: float) -> None:
    from cogsync.exceptions import ConfigError

    with pytest.raises(ConfigError, match=setting.replace("_", "-")):
        RealtimeLimits(**{setting: value})


async def test_cogsync_serve_flags_set_the_realtime_limits(tmp_path: Path) -> None:
    out = tmp_path / "cogsync.json"
    command = [
        *(sys.executable, "-m", "cogsync.cli", "serve", "--port", "0"),
        *("--data", str(tmp_path / "data"), "--config-out", str(out)),
        *("--realtime-connections-per-identity", "1", "--realtime-init-timeout", "0.5"),
        *("--realtime-check-interval", "0.05"),
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        first = await asyncio.to_thread(process.stderr.readline)
        assert "cogsync.serve: listening on" in first
        admin = json.loads((tmp_path / "data" / "admin.json").read_text())
        keys = SimpleNamespace(
            access_key_id=admin["access_key_id"], secret_access_key=admin["secret_access_key"]
        )
        srv = cast(EmbeddedServer, SimpleNamespace(config=Config.load(out), admin_credentials=keys))
        _, creds = await asyncio.to_thread(issue_credentials, srv)
        async with connected(srv, creds, init=False) as mute:
            async with connected(srv, creds, init=False) as excess:
                refusal = await receive(excess)
                assert refusal["type"] == "connection_error"
                assert refusal["payload"]["errors"][0]["errorType"] == "LimitExceededError"
            assert await closed_with(mute) == 4408
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        if process.stderr is not None:
            process.stderr.close()
