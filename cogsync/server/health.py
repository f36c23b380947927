"""The probe routes of `cogsync serve`: ``GET /health`` and ``GET /ready``.

Both are unauthenticated and carry no data. ``/health`` (liveness) answers 200 whenever the
process answers. ``/ready`` (readiness) answers 200 only while the data files are open and
the data directory is writable and the real-time hub runs; otherwise 503 with the reason.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

__all__ = ["probe_routes", "writable"]


def writable(directory: Path) -> str | None:
    """None if a file can be created in ``directory``; else why not."""
    probe = directory / f".ready-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"the data directory is not writable: {exc.strerror}"
    return None


def probe_routes(not_ready: Callable[[], str | None]) -> list[web.RouteDef]:
    """``/health`` and ``/ready``; ``not_ready`` (run on a worker thread) names a problem."""

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(_request: web.Request) -> web.Response:
        problem = await asyncio.to_thread(not_ready)
        if problem is not None:
            return web.json_response({"status": "unavailable", "reason": problem}, status=503)
        return web.json_response({"status": "ready"})

    return [web.get("/health", health), web.get("/ready", ready)]
