"""Logins for tests and demos against an embedded `cogsync serve`."""

from __future__ import annotations

import asyncio

from cogsync.demo import developer_login
from cogsync.server.runner import EmbeddedServer

__all__ = ["developer_logins"]


async def developer_logins(server: EmbeddedServer, user: str) -> dict[str, str]:
    """``logins`` of a developer-authenticated ``user``, as an app's backend would get them."""
    key = server.admin_credentials
    return await asyncio.to_thread(
        developer_login, server.config, key.access_key_id, key.secret_access_key, user
    )
