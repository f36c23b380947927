"""Calls to the simulated AppSync API with the client's own GraphQL documents."""

from __future__ import annotations

import uuid
from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError

from cogsync.remote import operations


class GraphQLFailure(Exception):
    """The API answered with GraphQL errors; ``first`` is the first one."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors
        self.first = errors[0]

    @property
    def error_type(self) -> str:
        return str(self.first.get("errorType"))

    @property
    def info(self) -> dict[str, Any]:
        return dict(self.first.get("errorInfo") or {})


async def execute(client: Client, document: str, **variables: Any) -> dict[str, Any]:
    """Run one operation; raise `GraphQLFailure` on GraphQL errors."""
    async with client as session:
        try:
            request = GraphQLRequest(document, variable_values=variables)
            result: dict[str, Any] = await session.execute(request)
        except TransportQueryError as exc:
            raise GraphQLFailure(list(exc.errors or [])) from exc
    return result


def patch(key: str, value: str | None, sync_count: int = 0, **extra: Any) -> dict[str, Any]:
    """A RecordPatchInput: REPLACE with a value, REMOVE with None."""
    op = "REMOVE" if value is None else "REPLACE"
    return {"op": op, "key": key, "value": value, "syncCount": sync_count, **extra}


async def push(
    client: Client,
    dataset: str,
    patches: list[dict[str, Any]],
    *,
    request_id: str | None = None,
    device: str = "device-a",
    protocol_version: int = 1,
) -> dict[str, Any]:
    """pushRecords; returns the DatasetChange."""
    data = await execute(
        client,
        operations.PUSH_RECORDS,
        input={
            "datasetName": dataset,
            "clientRequestId": request_id or str(uuid.uuid4()),
            "deviceId": device,
            "protocolVersion": protocol_version,
            "records": patches,
        },
    )
    return dict(data["pushRecords"])


async def pull(
    client: Client,
    dataset: str,
    last: int = 0,
    *,
    token: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """One listRecords page."""
    data = await execute(
        client,
        operations.LIST_RECORDS,
        datasetName=dataset,
        lastSyncCount=last,
        nextToken=token,
        limit=limit,
    )
    return dict(data["listRecords"])


async def pull_all(
    client: Client, dataset: str, last: int = 0, limit: int | None = None
) -> dict[str, Any]:
    """Every page of a pull: the first page's metadata with all records and the page count."""
    first = await pull(client, dataset, last, limit=limit)
    records, token, pages = list(first["records"]), first["nextToken"], 1
    while token:
        page = await pull(client, dataset, last, token=token, limit=limit)
        assert page["syncCount"] == first["syncCount"]
        records += page["records"]
        token, pages = page["nextToken"], pages + 1
    return {**first, "records": records, "nextToken": None, "pages": pages}


async def values(client: Client, dataset: str) -> dict[str, str | None]:
    """key -> value (None for tombstones) of a full pull."""
    page = await pull_all(client, dataset)
    return {r["key"]: r["value"] for r in page["records"]}


async def datasets(client: Client) -> dict[str, dict[str, Any]]:
    """name -> Dataset of every page of listDatasets."""
    found: dict[str, dict[str, Any]] = {}
    token = None
    while True:
        data = await execute(client, operations.LIST_DATASETS, nextToken=token, limit=None)
        page = data["listDatasets"]
        found.update({d["name"]: d for d in page["datasets"]})
        token = page["nextToken"]
        if not token:
            return found


async def delete(client: Client, dataset: str, request_id: str | None = None) -> dict[str, Any]:
    """deleteDataset; returns the DatasetChange."""
    data = await execute(
        client,
        operations.DELETE_DATASET,
        datasetName=dataset,
        clientRequestId=request_id or str(uuid.uuid4()),
    )
    return dict(data["deleteDataset"])
