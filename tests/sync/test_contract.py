"""The `RemoteBackend` contract against the in-memory fake and against a real `cogsync serve`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cogsync.auth.cognito import CognitoIdentity
from cogsync.client import AsyncClient
from cogsync.remote.base import RemoteBackend
from cogsync.remote.graphql import GraphQLBackend
from cogsync.server.runner import EmbeddedServer
from cogsync.testing.contract import BackendContract
from cogsync.testing.fakes import MemoryBackend, MemoryServer
from cogsync.testing.servers import developer_logins as logins_for

_SERVER = MemoryServer()


class TestMemoryBackend(BackendContract):
    async def make_backend(self, identity: str) -> RemoteBackend:
        return MemoryBackend(_SERVER, identity)

    async def make_client(self, identity: str, db_path: Path, device_id: str) -> AsyncClient:
        return AsyncClient(
            db_path=db_path,
            backend=MemoryBackend(_SERVER, identity),
            identity_id=identity,
            device_id=device_id,
        )


class TestEmbeddedServer(BackendContract):
    server: EmbeddedServer

    @pytest.fixture(autouse=True)
    def _use_server(self, shared_server: EmbeddedServer) -> None:
        self.server = shared_server
        self._logins: dict[str, dict[str, str]] = {}

    async def _logins_of(self, identity: str) -> dict[str, str]:
        if identity not in self._logins:
            self._logins[identity] = await logins_for(self.server, identity)
        return self._logins[identity]

    async def make_backend(self, identity: str) -> RemoteBackend:
        config = self.server.config
        logins = await self._logins_of(identity)
        return GraphQLBackend(config, CognitoIdentity(config, logins=logins))

    async def make_client(self, identity: str, db_path: Path, device_id: str) -> AsyncClient:
        logins = await self._logins_of(identity)
        return AsyncClient(self.server.config, db_path=db_path, logins=logins, device_id=device_id)

    # gql hands aiohttp the request body as raw bytes, and aiohttp warns about bodies over
    # 1 MiB; a dataset at its size limit needs one.
    @pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
    async def test_size_limit_at_and_past_the_boundary(self, tmp_path: Path) -> None:
        await super().test_size_limit_at_and_past_the_boundary(tmp_path)
