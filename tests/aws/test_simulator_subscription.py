"""onDatasetChanged over the AppSync real-time protocol (gql's AppSyncWebsocketsTransport)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.credentials import Credentials
from gql import Client, GraphQLRequest
from gql.transport.appsync_auth import AppSyncIAMAuthentication
from gql.transport.appsync_websockets import AppSyncWebsocketsTransport
from gql.transport.exceptions import TransportQueryError

from cogsync.remote import operations
from tests.aws.conftest import REGION, SimulatorBackend
from tests.aws.wire import delete, patch, push

pytestmark = pytest.mark.aws


def realtime_client(backend: SimulatorBackend, access_key: str) -> Client:
    auth = AppSyncIAMAuthentication(
        host=backend.host, region_name=REGION, credentials=Credentials(access_key, "unchecked")
    )
    transport = AppSyncWebsocketsTransport(url=backend.realtime_url, auth=auth)
    return Client(transport=transport, fetch_schema_from_transport=False)


async def _events(session: Any, identity_id: str, sink: asyncio.Queue[dict[str, Any]]) -> None:
    request = GraphQLRequest(
        operations.ON_DATASET_CHANGED, variable_values={"identityId": identity_id}
    )
    async for event in session.subscribe(request):
        await sink.put(event["onDatasetChanged"])


async def test_the_owner_is_told_of_pushes_and_deletions(aws_backend: SimulatorBackend) -> None:
    key, identity_id = aws_backend.identity()
    writer = aws_backend.client(key)
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with realtime_client(aws_backend, key) as session:
        listener = asyncio.create_task(_events(session, identity_id, received))
        try:
            await asyncio.sleep(0.5)  # let start/start_ack complete before publishing
            await push(writer, "watched", [patch("k", "v")])
            event = await asyncio.wait_for(received.get(), timeout=10)
            assert event == {
                "identityId": identity_id,
                "datasetName": "watched",
                "syncCount": 1,
                "deleted": False,
            }
            await delete(writer, "watched")
            event = await asyncio.wait_for(received.get(), timeout=10)
            assert (event["syncCount"], event["deleted"]) == (2, True)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)


async def test_subscribing_to_another_identity_is_refused(aws_backend: SimulatorBackend) -> None:
    _, alice_id = aws_backend.identity()
    mallory_key, _ = aws_backend.identity()
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with realtime_client(aws_backend, mallory_key) as session:
        with pytest.raises(TransportQueryError) as caught:
            await asyncio.wait_for(_events(session, alice_id, received), timeout=10)
    (payload,) = caught.value.errors or [{}]
    assert [e["errorType"] for e in payload["errors"]] == ["UnauthorizedException"]
    assert received.empty()
