"""Helpers shared by the `cogsync serve` wire tests: GraphQL documents, clients, credentials."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.appsync_auth import AppSyncIAMAuthentication
from gql.transport.appsync_websockets import AppSyncWebsocketsTransport

from cogsync.server.runner import EmbeddedServer

SERVER_INFO = """query { serverInfo {
  protocolVersion maxDatasets maxRecords maxDatasetBytes maxKeyBytes } }"""
LIST_DATASETS = """query L($t: String) { listDatasets(nextToken: $t) {
  datasets { name syncCount sizeInBytes recordCount deleted } nextToken } }"""
LIST_RECORDS = """query R($n: String!, $s: Int!) { listRecords(datasetName: $n, lastSyncCount: $s) {
  datasetName syncCount deleted mergedDatasetNames records { key value syncCount } nextToken } }"""
PUSH = """mutation P($i: PushRecordsInput!) { pushRecords(input: $i) {
  identityId datasetName syncCount deleted records { key value syncCount } } }"""
DELETE = """mutation D($n: String!, $r: String!) {
  deleteDataset(datasetName: $n, clientRequestId: $r) {
    identityId datasetName syncCount deleted } }"""
SUBSCRIBE = """subscription S($id: ID!) { onDatasetChanged(identityId: $id) {
  identityId datasetName syncCount deleted } }"""


def op(document: str, **variables: Any) -> GraphQLRequest:
    """A GraphQL request with its variables."""
    return GraphQLRequest(document, variable_values=variables or None)


class Clock:
    """The server's clock: real time plus an offset that tests move."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def identity_client(srv: EmbeddedServer, *, admin: bool = False) -> Any:
    """A boto3 cognito-identity client for the server (admin-signed if ``admin``)."""
    keys = srv.admin_credentials
    return boto3.client(
        "cognito-identity",
        endpoint_url=srv.config.identity_endpoint,
        region_name=srv.config.region,
        aws_access_key_id=keys.access_key_id if admin else "unused",
        aws_secret_access_key=keys.secret_access_key if admin else "unused",
    )


def issue_credentials(
    srv: EmbeddedServer, logins: dict[str, str] | None = None
) -> tuple[str, Credentials]:
    """GetId + GetCredentialsForIdentity (blocking): the identity id and its credentials."""
    client = identity_client(srv)
    extra = {"Logins": logins} if logins else {}
    identity_id = client.get_id(IdentityPoolId=srv.config.identity_pool_id, **extra)["IdentityId"]
    creds = client.get_credentials_for_identity(IdentityId=identity_id, **extra)["Credentials"]
    return identity_id, Credentials(creds["AccessKeyId"], creds["SecretKey"], creds["SessionToken"])


async def new_identity(srv: EmbeddedServer) -> tuple[str, Credentials]:
    """A guest identity and its credentials, fetched off the event loop."""
    return await asyncio.to_thread(issue_credentials, srv)


def iam_auth(srv: EmbeddedServer, creds: Credentials) -> AppSyncIAMAuthentication:
    host = urlsplit(srv.config.graphql_url).netloc
    return AppSyncIAMAuthentication(host=host, region_name=srv.config.region, credentials=creds)


def http_client(srv: EmbeddedServer, creds: Credentials) -> Client:
    transport = AIOHTTPTransport(url=srv.config.graphql_url, auth=iam_auth(srv, creds))
    return Client(transport=transport, fetch_schema_from_transport=False)


def ws_client(srv: EmbeddedServer, creds: Credentials) -> Client:
    transport = AppSyncWebsocketsTransport(url=srv.config.realtime_url, auth=iam_auth(srv, creds))
    return Client(transport=transport, fetch_schema_from_transport=False)


def push(name: str, request_id: str, records: dict[str, str | None]) -> GraphQLRequest:
    """A pushRecords request writing ``records`` (None removes) as new records."""
    return op(
        PUSH,
        i={
            "datasetName": name,
            "clientRequestId": request_id,
            "deviceId": "device-1",
            "protocolVersion": 1,
            "records": [
                {
                    "op": "REPLACE" if value is not None else "REMOVE",
                    "key": key,
                    "value": value,
                    "syncCount": 0,
                }
                for key, value in records.items()
            ],
        },
    )


def signed_headers(
    srv: EmbeddedServer,
    creds: Credentials,
    body: bytes,
    *,
    service: str = "appsync",
    path: str = "/graphql",
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """The headers of a SigV4-signed POST of ``body`` to ``path``."""
    url = f"{srv.url}{path}"
    request = AWSRequest(
        "POST", url, data=body, headers={"content-type": "application/json", **(headers or {})}
    )
    SigV4Auth(creds, service, srv.config.region).add_auth(request)
    return dict(request.headers)


async def signed_post(
    srv: EmbeddedServer,
    creds: Credentials,
    body: bytes,
    *,
    service: str = "appsync",
    path: str = "/graphql",
) -> tuple[int, bytes]:
    """POST ``body`` signed with ``creds``; the status and the raw answer."""
    headers = signed_headers(srv, creds, body, service=service, path=path)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{srv.url}{path}", data=io.BytesIO(body), headers=headers) as answer,
    ):
        return answer.status, await answer.read()


# -- raw real-time WebSocket messages ---------------------------------------------------


async def receive(ws: aiohttp.ClientWebSocketResponse, *, skip_ka: bool = True) -> dict[str, Any]:
    """The next JSON message (keep-alives skipped)."""
    while True:
        message = await asyncio.wait_for(ws.receive(), 5)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        data: dict[str, Any] = json.loads(message.data)
        if not (skip_ka and data["type"] == "ka"):
            return data


def subprotocol_header(srv: EmbeddedServer, creds: Credentials) -> str:
    encoded = json.dumps(iam_auth(srv, creds).get_headers()).encode()
    return "header-" + base64.urlsafe_b64encode(encoded).decode().rstrip("=")


def start_message(srv: EmbeddedServer, creds: Credentials, op_id: str, identity: str) -> str:
    data = json.dumps({"query": SUBSCRIBE, "variables": {"id": identity}})
    authorization = iam_auth(srv, creds).get_headers(data)
    payload = {"data": data, "extensions": {"authorization": authorization}}
    return json.dumps({"id": op_id, "type": "start", "payload": payload})
