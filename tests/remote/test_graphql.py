"""`GraphQLBackend` against a real `cogsync serve`: every method and error translation."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from botocore.credentials import Credentials

from cogsync.auth.cognito import CognitoIdentity
from cogsync.exceptions import (
    ConflictError,
    DatasetLimitExceededError,
    DatasetSizeLimitExceededError,
    InvalidKeyError,
    InvalidNameError,
    NotAuthorizedError,
    OfflineError,
    RecordLimitExceededError,
    ServerError,
)
from cogsync.limits import DEFAULT_LIMITS, Limits
from cogsync.models import PROTOCOL_VERSION, PatchOp, Record, RecordPatch, utcnow
from cogsync.remote.base import RemoteBackend
from cogsync.remote.graphql import GraphQLBackend
from cogsync.server.runner import EmbeddedServer

DEVICE = "device-1"
STAMP = "2026-01-01T00:00:00.123Z"


def put(key: str, value: str, sync_count: int = 0) -> RecordPatch:
    return RecordPatch(PatchOp.REPLACE, key, value, sync_count, utcnow())


def rid() -> str:
    return str(uuid.uuid4())


@pytest.fixture
async def backend(server: EmbeddedServer) -> AsyncIterator[GraphQLBackend]:
    async with GraphQLBackend(server.config, CognitoIdentity(server.config)) as remote:
        yield remote


async def test_it_is_a_remote_backend(backend: GraphQLBackend) -> None:
    remote: RemoteBackend = backend
    assert remote is backend


async def test_server_info(backend: GraphQLBackend) -> None:
    info = await backend.server_info()
    assert info.protocol_version == PROTOCOL_VERSION
    assert (info.max_datasets, info.max_records) == (20, 1024)
    assert info.max_dataset_bytes == DEFAULT_LIMITS.max_dataset_bytes
    assert info.max_key_bytes == 128


async def test_push_then_pull_round_trip(backend: GraphQLBackend) -> None:
    edited = utcnow() - timedelta(minutes=3)
    patches = [
        RecordPatch(PatchOp.REPLACE, "color", "green", 0, edited),
        put("size", '{"w": 3, "h": 4}'),
    ]
    pushed = await backend.push_records("prefs", patches, client_request_id=rid(), device_id=DEVICE)
    assert pushed.dataset_name == "prefs"
    assert pushed.sync_count == 1
    by_key = {r.key: r for r in pushed.records}
    assert by_key["color"].value == "green"  # values come from the patches
    assert by_key["size"].sync_count == 1
    assert by_key["color"].device_last_modified_date == edited

    page = await backend.list_records("prefs", 0)
    assert (page.dataset_name, page.sync_count, page.deleted) == ("prefs", 1, False)
    assert page.next_token is None
    assert page.merged_dataset_names == ()
    records = {r.key: r for r in page.records}
    assert records["size"].value == '{"w": 3, "h": 4}'
    color = records["color"]
    assert color.value == "green"
    assert color.device_last_modified_date == edited
    assert color.last_modified_date is not None
    assert color.last_modified_date.tzinfo == UTC
    assert abs(color.last_modified_date - datetime.now(UTC)) < timedelta(minutes=1)

    removed = await backend.push_records(
        "prefs",
        [RecordPatch(PatchOp.REMOVE, "color", None, 1, utcnow())],
        client_request_id=rid(),
        device_id=DEVICE,
    )
    assert removed.sync_count == 2
    later = await backend.list_records("prefs", 1)
    assert [(r.key, r.value, r.sync_count) for r in later.records] == [("color", None, 2)]


async def test_pages_of_records_and_datasets(server: EmbeddedServer) -> None:
    identity = CognitoIdentity(server.config)
    async with GraphQLBackend(server.config, identity, page_size=100) as remote:
        patches = [put(f"k{i:04d}", "v" * 50) for i in range(250)]
        await remote.push_records("big", patches, client_request_id=rid(), device_id=DEVICE)
        keys: list[str] = []
        token: str | None = None
        pages = 0
        while True:
            page = await remote.list_records("big", 0, token)
            keys.extend(r.key for r in page.records)
            pages += 1
            token = page.next_token
            if token is None:
                break
        assert pages == 3
        assert sorted(keys) == [p.key for p in patches]
        assert len(keys) == len(set(keys))
    async with GraphQLBackend(server.config, identity, page_size=2) as remote:
        for i in range(4):
            await remote.push_records(
                f"d{i}", [put("k", "v")], client_request_id=rid(), device_id=DEVICE
            )
        names = [d.name for d in await remote.list_datasets()]
        assert sorted(names) == ["big", "d0", "d1", "d2", "d3"]


async def test_list_and_delete_datasets(backend: GraphQLBackend) -> None:
    assert await backend.list_datasets() == []
    await backend.push_records("a", [put("k", "12345")], client_request_id=rid(), device_id=DEVICE)
    await backend.push_records("b", [put("k", "v")], client_request_id=rid(), device_id=DEVICE)
    listed = {d.name: d for d in await backend.list_datasets()}
    assert set(listed) == {"a", "b"}
    assert (listed["a"].sync_count, listed["a"].record_count, listed["a"].size_in_bytes) == (
        1,
        1,
        6,
    )
    assert listed["a"].last_modified is not None and not listed["a"].deleted

    count = await backend.delete_dataset("a", client_request_id=rid())
    assert count > 1
    after = {d.name: d for d in await backend.list_datasets()}
    assert after["a"].deleted and after["a"].sync_count == count
    assert not after["b"].deleted
    assert (await backend.list_records("a", 0)).deleted


async def test_a_retried_push_is_applied_once(backend: GraphQLBackend) -> None:
    request_id = rid()
    first = await backend.push_records(
        "once", [put("n", "1")], client_request_id=request_id, device_id=DEVICE
    )
    again = await backend.push_records(
        "once", [put("n", "1")], client_request_id=request_id, device_id=DEVICE
    )
    assert first.sync_count == again.sync_count == 1
    assert (await backend.list_records("once", 0)).sync_count == 1


async def test_identities_do_not_see_each_other(
    server: EmbeddedServer, backend: GraphQLBackend
) -> None:
    await backend.push_records("mine", [put("k", "v")], client_request_id=rid(), device_id=DEVICE)
    async with GraphQLBackend(server.config, CognitoIdentity(server.config)) as other:
        assert await other.list_datasets() == []


async def test_stale_sync_count_is_a_conflict(backend: GraphQLBackend) -> None:
    await backend.push_records("c", [put("k", "v1")], client_request_id=rid(), device_id=DEVICE)
    with pytest.raises(ConflictError) as caught:
        await backend.push_records("c", [put("k", "v2")], client_request_id=rid(), device_id=DEVICE)
    assert (caught.value.key, caught.value.current, caught.value.expected) == ("k", 1, 0)
    assert caught.value.retryable
    assert isinstance(caught.value.__cause__, Exception)


async def test_limits_become_typed_errors(tmp_path: Path) -> None:
    limits = Limits(max_datasets=2, max_records=3, max_dataset_bytes=40)
    async with (
        EmbeddedServer(tmp_path / "srv", limits=limits) as server,
        GraphQLBackend(server.config, CognitoIdentity(server.config)) as remote,
    ):
        info = await remote.server_info()
        assert (info.max_datasets, info.max_records, info.max_dataset_bytes) == (2, 3, 40)
        for name in ("d1", "d2"):
            await remote.push_records(
                name, [put("k", "v")], client_request_id=rid(), device_id=DEVICE
            )
        with pytest.raises(DatasetLimitExceededError) as datasets:
            await remote.push_records(
                "d3", [put("k", "v")], client_request_id=rid(), device_id=DEVICE
            )
        assert (datasets.value.limit, datasets.value.attempted) == (2, 3)
        with pytest.raises(RecordLimitExceededError) as records:
            await remote.push_records(
                "d1",
                [put(f"r{i}", "v") for i in range(3)],
                client_request_id=rid(),
                device_id=DEVICE,
            )
        assert (records.value.limit, records.value.attempted) == (3, 4)
        with pytest.raises(DatasetSizeLimitExceededError) as size:
            await remote.push_records(
                "d2", [put("big", "x" * 60)], client_request_id=rid(), device_id=DEVICE
            )
        assert size.value.limit == 40 and size.value.attempted > 40
        assert (await remote.list_records("d2", 0)).sync_count == 1  # nothing was written


async def test_invalid_parameters_become_usage_errors(backend: GraphQLBackend) -> None:
    with pytest.raises(InvalidNameError):
        await backend.list_records("no spaces allowed", 0)
    with pytest.raises(InvalidKeyError):
        await backend.push_records(
            "ok", [put("k" * 129, "v")], client_request_id=rid(), device_id=DEVICE
        )


class TamperedIdentity(CognitoIdentity):
    """Real credentials from the server, with one character of the secret changed."""

    async def credentials(self) -> Credentials:
        real = await super().credentials()
        secret = real.secret_key[:-1] + ("A" if real.secret_key[-1] != "A" else "B")
        return Credentials(real.access_key, secret, real.token)


async def test_a_bad_signature_is_not_authorized(server: EmbeddedServer) -> None:
    async with GraphQLBackend(server.config, TamperedIdentity(server.config)) as remote:
        with pytest.raises(NotAuthorizedError, match="log in again") as caught:
            await remote.list_datasets()
    assert not caught.value.retryable


async def test_closed_port_is_offline_quickly(server: EmbeddedServer, closed_port: int) -> None:
    config = replace(server.config, graphql_url=f"http://127.0.0.1:{closed_port}/graphql")
    async with GraphQLBackend(config, CognitoIdentity(server.config)) as remote:
        started = time.monotonic()
        with pytest.raises(OfflineError, match="local data is intact") as caught:
            await remote.server_info()
        assert time.monotonic() - started < 2.0
    assert caught.value.retryable


async def test_a_silent_server_times_out_as_offline(server: EmbeddedServer) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # hold the connection until the client gives up
        writer.close()

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    config = replace(server.config, graphql_url=f"http://127.0.0.1:{port}/graphql")
    try:
        async with GraphQLBackend(config, CognitoIdentity(server.config), timeout=0.5) as remote:
            started = time.monotonic()
            with pytest.raises(OfflineError):
                await remote.server_info()
            assert 0.4 < time.monotonic() - started < 3.0
    finally:
        silent.close()
        await silent.wait_closed()


class CountingIdentity(CognitoIdentity):
    """Counts how often the backend had to throw credentials away after a refusal."""

    invalidated = 0

    def invalidate_credentials(self) -> None:
        self.invalidated += 1
        super().invalidate_credentials()


async def test_requests_are_signed_with_renewed_credentials(tmp_path: Path) -> None:
    async with EmbeddedServer(tmp_path / "srv", credential_lifetime=2.0) as server:
        identity = CountingIdentity(server.config, refresh_margin=timedelta(seconds=0.5))
        async with GraphQLBackend(server.config, identity) as remote:
            await remote.server_info()
            first = await identity.credentials()
            await asyncio.sleep(2.1)  # the first credentials have expired on the server
            await remote.server_info()
            assert await identity.credentials() is not first
            assert identity.invalidated == 0  # renewed ahead of time, not after a refusal


async def test_a_closed_backend_refuses_calls(server: EmbeddedServer) -> None:
    remote = GraphQLBackend(server.config, CognitoIdentity(server.config))
    await remote.server_info()
    await remote.close()
    await remote.close()
    with pytest.raises(RuntimeError, match="closed"):
        await remote.server_info()


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ("r1", "no list records"),
        ({"key": 1, "syncCount": 1, "lastModifiedDate": STAMP}, "no string key"),
        ({"key": "k", "syncCount": "1", "lastModifiedDate": STAMP}, "no integer syncCount"),
        ({"key": "k", "syncCount": True, "lastModifiedDate": STAMP}, "no integer syncCount"),
        ({"key": "k", "syncCount": 1, "lastModifiedDate": "yesterday"}, "invalid AWSDateTime"),
        ({"key": "k", "syncCount": 1, "lastModifiedDate": [STAMP]}, "AWSDateTime string"),
    ],
)
async def test_a_page_outside_the_protocol_is_a_server_error(
    server: EmbeddedServer, item: object, problem: str
) -> None:
    good = {"key": "a", "value": "1", "syncCount": 2, "lastModifiedDate": STAMP,
            "lastModifiedBy": "d", "deviceLastModifiedDate": None}  # fmt: skip
    async with _answering(server, [good, item]) as remote:
        with pytest.raises(ServerError, match=problem):
            await remote.list_records("ds", 0)


async def test_a_page_decodes_into_records(server: EmbeddedServer) -> None:
    items = [
        {"key": "a", "value": "1", "syncCount": 2, "lastModifiedDate": STAMP,
         "lastModifiedBy": "d", "deviceLastModifiedDate": None},
        {"key": "b", "value": None, "syncCount": 3, "lastModifiedDate": "2026-01-02T03:04:05Z",
         "lastModifiedBy": None, "deviceLastModifiedDate": STAMP},
    ]  # fmt: skip
    async with _answering(server, items) as remote:
        page = await remote.list_records("ds", 0)
    moment = datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    assert page.records == (
        Record("a", "1", 2, moment, "d", None),
        Record("b", None, 3, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), None, moment),
    )


@contextlib.asynccontextmanager
async def _answering(server: EmbeddedServer, items: list[object]) -> AsyncIterator[GraphQLBackend]:
    """A backend whose GraphQL endpoint answers every request with a page of ``items``."""
    page = {"datasetName": "ds", "syncCount": 3, "records": items, "nextToken": None}

    async def answer(_request: web.Request) -> web.Response:
        return web.json_response({"data": {"listRecords": page}})

    app = web.Application()
    app.router.add_post("/graphql", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    config = replace(server.config, graphql_url=f"http://127.0.0.1:{port}/graphql")
    try:
        async with GraphQLBackend(config, CognitoIdentity(server.config)) as remote:
            yield remote
    finally:
        await runner.cleanup()
