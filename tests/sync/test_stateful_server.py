"""The convergence state machine of `cogsync.testing.stateful` against a real `cogsync serve`,
with server restarts between steps."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import rule

from cogsync.auth.cognito import CognitoIdentity
from cogsync.demo import developer_login
from cogsync.remote.base import RemoteBackend
from cogsync.remote.graphql import GraphQLBackend
from cogsync.server.runner import EmbeddedServer
from cogsync.testing.stateful import SyncMachine


class ServerSyncMachine(SyncMachine):
    """`SyncMachine` whose devices talk GraphQL to a real server (fresh identities per run)."""

    server_under_test: EmbeddedServer | None = None

    def __init__(self) -> None:
        self._suffix = uuid.uuid4().hex[:10]
        self._identities: dict[str, CognitoIdentity] = {}
        self._backends: list[GraphQLBackend] = []
        super().__init__()

    def make_server(self) -> Any:
        assert self.server_under_test is not None
        return self.server_under_test

    def make_backend(self, server: Any, identity_id: str) -> RemoteBackend:
        assert isinstance(server, EmbeddedServer)
        config, admin = server.config, server.admin_credentials
        if identity_id not in self._identities:  # devices of one identity share its credentials
            user = f"{identity_id}-{self._suffix}"
            logins = developer_login(config, admin.access_key_id, admin.secret_access_key, user)
            self._identities[identity_id] = CognitoIdentity(config, logins=logins)
        backend = GraphQLBackend(config, self._identities[identity_id])
        self._backends.append(backend)
        return backend

    @rule()
    def restart_server(self) -> None:
        """The server stops and starts again on the same port and data directory.

        Each device then opens new connections: its event loop is idle between steps, so a
        pooled connection would only learn of the restart when reused (see the fault test
        ``test_sync_after_the_network_forgot_an_idle_connection``).
        """
        server = self.server
        assert isinstance(server, EmbeddedServer)
        server.__exit__(None, None, None)
        server.__enter__()
        for device, flaky in zip(self.identities, self.flaky, strict=True):
            flaky.inner = self.make_backend(server, device)

    def teardown(self) -> None:
        """Settle, then close every backend before the event loop goes."""
        try:
            if self.ticks:
                self.settle()
        finally:
            for backend in self._backends:
                self.loop.run_until_complete(backend.close())
            self.loop.close()


@pytest.fixture
def machine(shared_server: EmbeddedServer) -> Iterator[type[ServerSyncMachine]]:
    ServerSyncMachine.server_under_test = shared_server
    try:
        yield ServerSyncMachine
    finally:
        ServerSyncMachine.server_under_test = None


_quick = settings(
    max_examples=4,
    stateful_step_count=20,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # shrinking over HTTP can take minutes
    suppress_health_check=[HealthCheck.too_slow],
)
_long = settings(_quick, max_examples=60, stateful_step_count=50, phases=list(Phase))


def test_devices_converge_through_a_real_server(machine: type[ServerSyncMachine]) -> None:
    run = machine.TestCase
    run.settings = _quick
    run().runTest()


@pytest.mark.slow
def test_devices_converge_through_a_real_server_long(machine: type[ServerSyncMachine]) -> None:
    run = machine.TestCase
    run.settings = _long
    run().runTest()
