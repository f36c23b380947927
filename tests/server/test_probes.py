"""``GET /health`` and ``GET /ready`` on a real server, and ``python -m cogsync``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp

from cogsync.server.runner import EmbeddedServer


async def _get(srv: EmbeddedServer, path: str) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(srv.url + path) as answer:
        return answer.status, await answer.json()


async def test_health_and_ready_answer_without_credentials(server: EmbeddedServer) -> None:
    assert await _get(server, "/health") == (200, {"status": "ok"})
    assert await _get(server, "/ready") == (200, {"status": "ready"})


async def test_not_ready_while_the_data_directory_is_unwritable(server: EmbeddedServer) -> None:
    # root writes through any mode bits, so take the directory away instead of chmod-ing it
    moved = server.data_dir.with_name("moved")
    server.data_dir.rename(moved)
    try:
        status, body = await _get(server, "/ready")
        assert status == 503
        assert "not writable" in body["reason"]
        assert (await _get(server, "/health"))[0] == 200
    finally:
        moved.rename(server.data_dir)
    assert (await _get(server, "/ready"))[0] == 200


async def test_not_ready_when_the_realtime_hub_stops(server: EmbeddedServer) -> None:
    from cogsync.server.app import REALTIME

    assert server._runner is not None
    server._runner.app[REALTIME].running = False
    status, body = await _get(server, "/ready")
    assert status == 503 and "real-time" in body["reason"]


def test_python_dash_m_runs_the_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cogsync", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0
    assert "serve" in done.stdout
