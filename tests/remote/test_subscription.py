"""`DatasetChangeSubscription` against the real-time endpoint of a real `cogsync serve`."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials
from gql.transport.appsync_auth import AppSyncIAMAuthentication
from gql.transport.exceptions import TransportServerError

from cogsync._backoff import backoff_delays
from cogsync.auth.cognito import CognitoIdentity
from cogsync.exceptions import CogsyncError, NotAuthorizedError, OfflineError
from cogsync.models import PatchOp, RecordPatch, utcnow
from cogsync.remote.graphql import GraphQLBackend
from cogsync.remote.subscription import DatasetChangeSubscription, _RealtimeTransport
from cogsync.server.realtime_limits import RealtimeLimits
from cogsync.server.runner import EmbeddedServer

Change = tuple[str, int, bool]


def fast() -> Iterator[float]:
    return backoff_delays(initial=0.05, maximum=0.2)


class Recorder:
    """Collects what a subscription reports."""

    def __init__(self) -> None:
        self.changes: asyncio.Queue[Change] = asyncio.Queue()
        self.connects = 0
        self.errors: list[CogsyncError] = []

    async def on_change(self, name: str, sync_count: int, deleted: bool) -> None:
        self.changes.put_nowait((name, sync_count, deleted))

    def on_connect(self) -> None:
        self.connects += 1

    def on_error(self, error: CogsyncError) -> None:
        self.errors.append(error)

    def subscription(
        self, config: Any, identity: CognitoIdentity, **kwargs: Any
    ) -> DatasetChangeSubscription:
        return DatasetChangeSubscription(
            config,
            identity,
            on_change=self.on_change,
            on_connect=self.on_connect,
            on_error=self.on_error,
            delays=fast,
            **kwargs,
        )

    async def live(self, config: Any, identity: CognitoIdentity) -> DatasetChangeSubscription:
        """A started subscription, once it is live."""
        subscription = self.subscription(config, identity)
        subscription.start()
        await subscription.wait_connected(5)
        return subscription

    async def next_change(self) -> Change:
        return await asyncio.wait_for(self.changes.get(), 5)


async def push(remote: GraphQLBackend, dataset: str, key: str, sync_count: int = 0) -> int:
    patch = RecordPatch(PatchOp.REPLACE, key, "v", sync_count, utcnow())
    result = await remote.push_records(
        dataset, [patch], client_request_id=str(uuid.uuid4()), device_id="other-device"
    )
    return result.sync_count


def leftover_tasks() -> list[asyncio.Task[Any]]:
    """Tasks still running code of the subscription or of gql."""
    found = []
    for task in asyncio.all_tasks() - {asyncio.current_task()}:
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if "gql" in filename or filename.endswith("remote/subscription.py"):
            found.append(task)
    return found


async def eventually(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_changes_from_another_device_arrive(server: EmbeddedServer) -> None:
    identity = CognitoIdentity(server.config)
    recorder = Recorder()
    subscription = await recorder.live(server.config, identity)
    assert subscription.connected and recorder.connects == 1 and subscription.connections == 1
    async with GraphQLBackend(server.config, identity) as remote:
        assert await push(remote, "notes", "a") == 1
        assert await recorder.next_change() == ("notes", 1, False)
        await push(remote, "notes", "b")
        assert await recorder.next_change() == ("notes", 2, False)
        count = await remote.delete_dataset("notes", client_request_id=str(uuid.uuid4()))
        assert await recorder.next_change() == ("notes", count, True)
    started = time.monotonic()
    await subscription.stop()
    assert time.monotonic() - started < 1.0
    assert not subscription.connected
    assert leftover_tasks() == []
    assert recorder.errors == []


async def test_other_identities_changes_do_not_arrive(server: EmbeddedServer) -> None:
    identity = CognitoIdentity(server.config)
    recorder = Recorder()
    subscription = await recorder.live(server.config, identity)
    async with (
        GraphQLBackend(server.config, CognitoIdentity(server.config)) as stranger,
        GraphQLBackend(server.config, identity) as mine,
    ):
        await push(stranger, "theirs", "k")
        await push(mine, "mine", "k")
        assert await recorder.next_change() == ("mine", 1, False)
    await subscription.stop()


async def test_another_identity_may_not_subscribe(server: EmbeddedServer) -> None:
    victim_id = await CognitoIdentity(server.config).get_identity_id()
    recorder = Recorder()
    subscription = recorder.subscription(
        server.config, CognitoIdentity(server.config), identity_id=victim_id
    )
    subscription.start()
    await eventually(lambda: len(recorder.errors) >= 2)
    await subscription.stop()
    assert all(isinstance(e, NotAuthorizedError) for e in recorder.errors)
    assert recorder.connects == 0 and subscription.connections == 0


async def test_reconnects_after_the_server_restarts(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    first = EmbeddedServer(data)
    await first.start()
    port, config = first.port, first.config
    identity = CognitoIdentity(config)
    recorder = Recorder()
    subscription = recorder.subscription(config, identity)
    subscription.start()
    try:
        await subscription.wait_connected(5)
        await first.stop()
        await eventually(lambda: not subscription.connected)
        await eventually(lambda: len(recorder.errors) >= 2)  # retrying against a closed port
        assert all(isinstance(e, OfflineError) for e in recorder.errors)
        async with EmbeddedServer(data, port=port) as second:
            await eventually(lambda: recorder.connects == 2)
            assert subscription.connections == 2 and subscription.connected
            async with GraphQLBackend(second.config, identity) as remote:
                await push(remote, "after-restart", "k")
            assert await recorder.next_change() == ("after-restart", 1, False)
            await subscription.stop()
    finally:
        await subscription.stop()
        await first.stop()
    assert leftover_tasks() == []


async def test_reconnects_when_the_server_ends_the_connection_or_the_subscription(
    tmp_path: Path,
) -> None:
    offset = [0.0]

    def clock() -> float:
        return time.time() + offset[0]

    # Credentials live 60 s, connections 120 s; the clock moves less than the 300 s of
    # signature skew allowed. The client keeps its credentials until told they expired.
    realtime = RealtimeLimits(max_lifetime=120, check_interval=0.05)
    async with EmbeddedServer(
        tmp_path / "srv", clock=clock, credential_lifetime=60, realtime=realtime
    ) as server:
        identity = CognitoIdentity(server.config, refresh_margin=timedelta(seconds=1))
        recorder = Recorder()
        subscription = await recorder.live(server.config, identity)
        try:
            offset[0] = 121  # the connection reached its maximum lifetime: closed (1000)
            await eventually(lambda: recorder.connects == 2)
            assert isinstance(recorder.errors[0], OfflineError)
            before = (await identity.credentials()).access_key
            offset[0] = 185  # the second connection's credentials expired: error, reconnect
            await eventually(lambda: recorder.connects == 3)
            assert isinstance(recorder.errors[-1], NotAuthorizedError)
            assert "expired" in str(recorder.errors[-1])
            assert (await identity.credentials()).access_key != before
            async with GraphQLBackend(server.config, identity) as remote:
                await push(remote, "after-expiry", "k")
            assert await recorder.next_change() == ("after-expiry", 1, False)
        finally:
            await subscription.stop()
    assert leftover_tasks() == []


async def test_a_silent_socket_is_detected_by_the_keep_alive_timeout(tmp_path: Path) -> None:
    async with EmbeddedServer(tmp_path / "srv", keepalive_interval=30.0) as server:
        recorder = Recorder()
        subscription = recorder.subscription(
            server.config, CognitoIdentity(server.config), keep_alive_timeout=0.3
        )
        subscription.start()
        await eventually(lambda: recorder.connects >= 3)
        await subscription.stop()
        assert any("keep-alive" in str(e) for e in recorder.errors)
        assert all(isinstance(e, OfflineError) for e in recorder.errors)


async def test_unreachable_server_is_retried_until_stopped(
    server: EmbeddedServer, closed_port: int
) -> None:
    config = replace(server.config, realtime_url=f"ws://127.0.0.1:{closed_port}/graphql/realtime")
    recorder = Recorder()
    subscription = recorder.subscription(config, CognitoIdentity(server.config))
    subscription.start()
    await eventually(lambda: len(recorder.errors) >= 3)
    assert not subscription.connected
    assert all(isinstance(e, OfflineError) for e in recorder.errors)
    started = time.monotonic()
    await subscription.stop()
    assert time.monotonic() - started < 0.5
    assert leftover_tasks() == []


async def test_stop_is_prompt_while_the_server_stays_silent(server: EmbeddedServer) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    config = replace(server.config, realtime_url=f"ws://127.0.0.1:{port}/graphql/realtime")
    subscription = Recorder().subscription(config, CognitoIdentity(server.config))
    subscription.start()
    await asyncio.sleep(0.3)  # the socket is open, the handshake never completes
    started = time.monotonic()
    await subscription.stop()
    assert time.monotonic() - started < 0.5
    assert leftover_tasks() == []
    listener.close()
    await listener.wait_closed()


async def test_a_failing_callback_does_not_end_the_subscription(server: EmbeddedServer) -> None:
    identity = CognitoIdentity(server.config)
    seen: list[str] = []

    def on_change(name: str, sync_count: int, deleted: bool) -> None:
        seen.append(name)
        raise RuntimeError("application bug")

    subscription = DatasetChangeSubscription(server.config, identity, on_change=on_change)
    subscription.start()
    await subscription.wait_connected(5)
    async with GraphQLBackend(server.config, identity) as remote:
        await push(remote, "one", "k")
        await push(remote, "two", "k")
        await eventually(lambda: seen == ["one", "two"])
    assert subscription.connections == 1
    await subscription.stop()


async def test_the_transport_honours_the_servers_timeout_and_notes_acks() -> None:
    auth = AppSyncIAMAuthentication(
        host="example.invalid", region_name="us-east-1", credentials=Credentials("AK", "SK")
    )
    transport = _RealtimeTransport(
        url="ws://example.invalid/graphql/realtime", auth=auth, keep_alive_timeout=300.0
    )
    transport._parse_answer('{"type":"connection_ack","payload":{"connectionTimeoutMs":1500}}')
    assert transport.keep_alive_timeout == 1.5
    assert not transport.subscribed.is_set()
    transport._parse_answer('{"type":"start_ack","id":"1"}')
    assert transport.subscribed.is_set()
    assert transport.server_error is None
    refusal = {"type": "connection_error", "payload": {"errors": [{"errorType": "Unauthorized"}]}}
    with pytest.raises(TransportServerError):
        transport._parse_answer(json.dumps(refusal))
    assert transport.server_error == {"errorType": "Unauthorized"}
