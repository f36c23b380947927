"""Fixtures for the cross-backend sync tests: real servers on 127.0.0.1, clients on them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tcp_proxy import TcpProxy

from cogsync.server.runner import EmbeddedServer


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One server on its own event-loop thread for a whole module (tests use fresh identities)."""
    with EmbeddedServer(tmp_path_factory.mktemp("server"), port=0) as srv:
        yield srv


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedServer, TcpProxy]]:
    """A fresh server and a TCP relay in front of it (tests point clients at the relay)."""
    async with EmbeddedServer(tmp_path / "server") as srv:
        proxy = await TcpProxy(srv.port).start()
        try:
            yield srv, proxy
        finally:
            await proxy.close()


def data_dir(tmp_path: Path) -> Path:
    """Where a test's server keeps its files."""
    return tmp_path / "server"
