"""Faults against a real server on 127.0.0.1: lost answers, a killed server, expired
credentials and a dropped WebSocket. Local data must survive each, and nothing may be
applied twice."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tcp_proxy import TcpProxy

from cogsync.auth.cognito import CognitoIdentity
from cogsync.client import AsyncClient
from cogsync.config import Config
from cogsync.demo import developer_login
from cogsync.exceptions import OfflineError
from cogsync.models import SyncResult
from cogsync.remote.graphql import GraphQLBackend
from cogsync.server.runner import EmbeddedServer
from cogsync.testing.servers import developer_logins as logins_for

_REQUEST_ID = re.compile(rb'"clientRequestId":\s*"([^"]+)"')


def _pushes(proxy: TcpProxy) -> list[bytes]:
    return [r for r in proxy.requests if b"pushRecords" in r]


async def test_push_whose_answer_is_lost_is_applied_once(
    proxied: tuple[EmbeddedServer, TcpProxy], tmp_path: Path
) -> None:
    srv, proxy = proxied
    logins = await logins_for(srv, "alice")
    async with (
        AsyncClient(proxy.config_for(srv.config), db_path=tmp_path / "a.db", logins=logins) as a,
        AsyncClient(srv.config, db_path=tmp_path / "b.db", logins=logins) as b,
    ):
        notes = await a.dataset("notes")
        await notes.put_all({"x": "1", "y": "2"})
        proxy.cut_answer_to(lambda request: b"pushRecords" in request)
        result = await notes.synchronize()
        assert proxy.cuts == 1
        assert (result.pushed, result.sync_count) == (2, 1)
        assert not (await notes.record("x")).dirty  # type: ignore[union-attr]
        ids = [_REQUEST_ID.findall(r) for r in _pushes(proxy)]
        assert len(ids) == 2 and ids[0] == ids[1]  # the retry re-sent the same request id
        assert srv.storage is not None
        log = [c for c in srv.storage.read_changes() if c.dataset_name == "notes"]
        assert [(c.sync_count, c.client_request_id) for c in log] == [(1, ids[0][0].decode())]
        other = await b.dataset("notes")
        assert (await other.synchronize()).sync_count == 1
        assert await other.get_all() == {"x": "1", "y": "2"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def _serve(data: Path, port: int) -> asyncio.subprocess.Process:
    code = "import sys; from cogsync.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["serve", "--port", str(port), "--data", str(data)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *args, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    line = await asyncio.wait_for(proc.stderr.readline(), 30)
    assert b"listening" in line, line
    _DRAINS.add(asyncio.ensure_future(proc.stderr.read()))  # log lines must not fill the pipe
    return proc


_DRAINS: set[asyncio.Future[bytes]] = set()


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()


async def test_server_killed_mid_sync_and_restarted(tmp_path: Path) -> None:
    data, port = tmp_path / "server", _free_port()
    proc = await _serve(data, port)
    proxy = await TcpProxy(port).start()
    try:
        config = Config.load(data / "cogsync.json")
        admin = json.loads((data / "admin.json").read_text())
        logins = await asyncio.to_thread(
            developer_login, config, admin["access_key_id"], admin["secret_access_key"], "kim"
        )
        routed = proxy.config_for(config)
        async with AsyncClient(routed, db_path=tmp_path / "a.db", logins=logins) as a:
            notes = await a.dataset("notes")
            await notes.put("before", "synced")
            await notes.synchronize()
            await notes.put_all({"during": "1", "before": "edited"})
            proxy.hold_request(lambda request: b"pushRecords" in request, lambda: _kill(proc))
            with pytest.raises(OfflineError):
                await notes.synchronize()
            assert await proc.wait() == -signal.SIGKILL
            assert await notes.get_all() == {"before": "edited", "during": "1"}
            assert (await notes.record("during")).dirty  # type: ignore[union-attr]

            proc = await _serve(data, port)  # same data directory, same port
            result = await notes.synchronize()
            assert (result.pushed, result.sync_count) == (2, 2)
        async with AsyncClient(config, db_path=tmp_path / "b.db", logins=logins) as b:
            fresh = await b.dataset("notes")
            await fresh.synchronize()
            assert await fresh.get_all() == {"before": "edited", "during": "1"}
    finally:
        await proxy.close()
        await _kill(proc)


def _credential_fetches(proxy: TcpProxy) -> int:
    return sum(b"GetCredentialsForIdentity" in r for r in proxy.requests)


def _refusals(proxy: TcpProxy) -> int:
    return sum(a.startswith((b"HTTP/1.1 401", b"HTTP/1.1 403")) for a in proxy.answers)


async def test_credentials_renewed_before_they_expire(tmp_path: Path) -> None:
    # 302 s of life and a 300 s renewal margin: a device renews them after 2 s
    async with EmbeddedServer(tmp_path / "server", credential_lifetime=302) as srv:
        proxy = await TcpProxy(srv.port).start()
        logins = await logins_for(srv, "lee")
        config = proxy.config_for(srv.config)
        try:
            async with AsyncClient(config, db_path=tmp_path / "a.db", logins=logins) as a:
                notes = await a.dataset("notes")
                await notes.put("k", "1")
                await notes.synchronize()
                fetched = _credential_fetches(proxy)
                await asyncio.sleep(2.2)
                await notes.put("k", "2")
                assert (await notes.synchronize()).pushed == 1
                assert _credential_fetches(proxy) == fetched + 1
                assert _refusals(proxy) == 0
        finally:
            await proxy.close()


async def test_credentials_expired_on_the_server_are_renewed_transparently(
    tmp_path: Path,
) -> None:
    # The device's clock runs an hour behind: its credentials look fresh to it, but the
    # server lets them expire after 2 s; the next sync is refused once, renews, succeeds.
    async with EmbeddedServer(tmp_path / "server", credential_lifetime=2) as srv:
        proxy = await TcpProxy(srv.port).start()
        logins = await logins_for(srv, "max")
        config = proxy.config_for(srv.config)
        behind = CognitoIdentity(
            config, logins=logins, clock=lambda: datetime.now(UTC) - timedelta(hours=1)
        )
        identity_id = await behind.get_identity_id()
        try:
            async with AsyncClient(
                config,
                db_path=tmp_path / "a.db",
                identity_id=identity_id,
                backend=GraphQLBackend(config, behind),
            ) as a:
                notes = await a.dataset("notes")
                await notes.put("k", "1")
                await notes.synchronize()
                await asyncio.sleep(2.5)
                await notes.put("k", "2")
                assert (await notes.synchronize()).pushed == 1
                assert _refusals(proxy) == 1
            async with AsyncClient(srv.config, db_path=tmp_path / "b.db", logins=logins) as b:
                other = await b.dataset("notes")
                await other.synchronize()
                assert await other.get("k") == "2"
        finally:
            await proxy.close()


async def test_dropped_websocket_catches_up_after_reconnect(
    proxied: tuple[EmbeddedServer, TcpProxy], tmp_path: Path
) -> None:
    srv, proxy = proxied
    logins = await logins_for(srv, "noa")
    synced: list[tuple[str, SyncResult]] = []
    async with (
        AsyncClient(srv.config, db_path=tmp_path / "a.db", logins=logins) as a,
        AsyncClient(proxy.config_for(srv.config), db_path=tmp_path / "b.db", logins=logins) as b,
    ):
        theirs = await b.dataset("notes")
        await b.start_push_sync(lambda name, result: synced.append((name, result)))
        await _until(lambda: bool(synced), "the first catch-up sync")
        proxy.refusing = True
        await proxy.drop_connections()  # the WebSocket goes down; reconnects are refused
        mine = await a.dataset("notes")
        await mine.put("k", "written while B was disconnected")
        await mine.synchronize()
        await asyncio.sleep(0.3)
        assert await theirs.get("k") is None
        proxy.refusing = False
        await _until(lambda: any(r.pulled for _, r in synced), "the catch-up after reconnect")
        assert await theirs.get("k") == "written while B was disconnected"


async def _until(condition: object, what: str, timeout: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_sync_after_the_network_forgot_an_idle_connection(
    proxied: tuple[EmbeddedServer, TcpProxy], tmp_path: Path
) -> None:
    srv, proxy = proxied
    logins = await logins_for(srv, "ora")
    async with AsyncClient(
        proxy.config_for(srv.config), db_path=tmp_path / "a.db", logins=logins
    ) as a:
        notes = await a.dataset("notes")
        await notes.put("k", "1")
        await notes.synchronize()
        await proxy.drop_silently()
        await notes.put("k", "2")
        assert (await notes.synchronize()).sync_count == 2
