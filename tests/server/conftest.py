"""Fixtures for the `cogsync serve` wire tests: real servers on 127.0.0.1 port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from server_wire import Clock

from cogsync.server.runner import EmbeddedServer


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def server(tmp_path: Path, clock: Clock) -> AsyncIterator[EmbeddedServer]:
    async with EmbeddedServer(tmp_path / "data", keepalive_interval=0.2, clock=clock) as srv:
        yield srv


@pytest.fixture
def threaded_server(tmp_path: Path, clock: Clock) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(tmp_path / "data", clock=clock) as srv:
        yield srv
