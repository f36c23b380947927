"""A Cognito Sync + Cognito Identity service on 127.0.0.1 that boto3 talks to as to AWS.

It serves the REST-JSON paths of ``cognito-sync`` (ListDatasets, ListRecords) and the
JSON 1.1 ``ListIdentities``, ``DescribeIdentityPool`` and ``LookupDeveloperIdentity`` of
``cognito-identity`` on one port, answering as the real
service does: SigV4-signed requests only, pages capped below what the caller asks so that
every call paginates, ``lastSyncCount`` deltas, merged datasets, tombstones, and throttling
injected every ``throttle_every`` requests. Every request's parameters and every response
are checked against botocore's own service models; a mismatch answers HTTP 500 and is kept
in ``shape_errors`` so tests fail on it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from aiohttp import web

_SESSION = botocore.session.get_session()
SYNC_MODEL = _SESSION.get_service_model("cognito-sync")
IDENTITY_MODEL = _SESSION.get_service_model("cognito-identity")


def check_shape(shape: Any, value: Any, where: str = "$") -> list[str]:
    """Differences between ``value`` and a botocore shape (members, types, lengths, enums)."""
    kind = shape.type_name
    problems: list[str] = []
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{where}: expected object"]
        for name in shape.metadata.get("required", []):
            if name not in value:
                problems.append(f"{where}: missing required {name}")
        for name, item in value.items():
            if name not in shape.members:
                problems.append(f"{where}: unknown member {name}")
            else:
                problems += check_shape(shape.members[name], item, f"{where}.{name}")
    elif kind == "list":
        if not isinstance(value, list):
            return [f"{where}: expected list"]
        for i, item in enumerate(value):
            problems += check_shape(shape.member, item, f"{where}[{i}]")
    elif kind == "map":
        if not isinstance(value, dict):
            return [f"{where}: expected map"]
        for k, v in value.items():
            problems += check_shape(shape.value, v, f"{where}[{k}]")
    elif kind == "string":
        if not isinstance(value, str):
            return [f"{where}: expected string"]
        low, high = shape.metadata.get("min", 0), shape.metadata.get("max", 1 << 30)
        if not low <= len(value) <= high:
            problems.append(f"{where}: length {len(value)} outside {low}-{high}")
        if shape.enum and value not in shape.enum:
            problems.append(f"{where}: {value!r} not in enum")
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{where}: expected integer"]
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{where}: expected boolean")
    elif kind == "timestamp" and not isinstance(value, int | float):
        problems.append(f"{where}: expected epoch seconds")
    return problems


@dataclass
class FakeRecord:
    key: str
    value: str | None
    sync_count: int
    modified: float
    modified_by: str
    device_modified: float | None


@dataclass
class FakeDataset:
    sync_count: int = 0
    created: float = field(default_factory=time.time)
    modified: float = field(default_factory=time.time)
    records: dict[str, FakeRecord] = field(default_factory=dict)


@dataclass
class FakeCognito:
    """The service state: pool -> identity -> dataset name -> dataset.

    Attributes:
        identity_page_cap / dataset_page_cap / record_page_cap: the most items a page holds,
            whatever ``MaxResults`` asks.
        throttle_every: every n-th request is throttled (0: never); alternately
            ``TooManyRequestsException`` (429) and ``LimitExceededException`` (400).
        requests: operations answered, by name; throttled: requests throttled.
        developer_provider: the pool's ``DeveloperProviderName`` (None: the pool has none).
        developer_users: identity id -> developer user ids linked to it.
        lookup_page_cap: the most user ids a ``LookupDeveloperIdentity`` page holds.
    """

    pool_id: str = "us-east-1:00000000-0000-4000-8000-000000000001"
    identity_page_cap: int = 60
    dataset_page_cap: int = 2
    record_page_cap: int = 7
    throttle_every: int = 0
    identities: dict[str, dict[str, FakeDataset]] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    shape_errors: list[str] = field(default_factory=list)
    developer_provider: str | None = "login.example.app"
    developer_users: dict[str, list[str]] = field(default_factory=dict)
    lookup_page_cap: int = 2
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- data edits (what devices did through the real service) -----------------------

    def new_identity(self) -> str:
        identity_id = f"us-east-1:{uuid.uuid4()}"
        self.identities[identity_id] = {}
        return identity_id

    def link_developer(self, identity_id: str, user: str) -> None:
        """Link a developer user id to an identity (GetOpenIdTokenForDeveloperIdentity did)."""
        with self._lock:
            self.developer_users.setdefault(identity_id, []).append(user)

    def update(self, identity_id: str, name: str, changes: dict[str, str | None]) -> int:
        """Apply one UpdateRecords batch: a new dataset sync count for every changed key."""
        with self._lock:
            dataset = self.identities[identity_id].setdefault(name, FakeDataset())
            dataset.sync_count += 1
            now = round(time.time(), 3)
            for key, value in changes.items():
                dataset.records[key] = FakeRecord(
                    key, value, dataset.sync_count, now, identity_id, now - 1.5
                )
            dataset.modified = now
            return dataset.sync_count

    def delete(self, identity_id: str, name: str) -> None:
        with self._lock:
            del self.identities[identity_id][name]

    # -- HTTP --------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/", self._identity_api)
        app.router.add_get(
            "/identitypools/{pool}/identities/{identity}/datasets", self._list_datasets
        )
        app.router.add_get(
            "/identitypools/{pool}/identities/{identity}/datasets/{name}/records",
            self._list_records,
        )
        return app

    def _count(self, operation: str, service: str) -> web.Response | None:
        with self._lock:
            self.requests[operation] = self.requests.get(operation, 0) + 1
            self._counter += 1
            throttle = self.throttle_every and self._counter % self.throttle_every == 0
            if throttle:
                self.throttled += 1
        if not throttle:
            return None
        if service == "identity" or self.throttled % 2:
            return self._error(service, "TooManyRequestsException", "Rate exceeded", 429)
        return self._error(service, "LimitExceededException", "Rate exceeded", 400)

    @staticmethod
    def _error(service: str, code: str, message: str, status: int) -> web.Response:
        if service == "identity":
            return web.json_response(
                {"__type": code, "message": message},
                status=status,
                content_type="application/x-amz-json-1.1",
            )
        return web.json_response(
            {"message": message}, status=status, headers={"x-amzn-ErrorType": f"{code}:"}
        )

    def _signed(self, request: web.Request, service: str) -> bool:
        auth = request.headers.get("Authorization", "")
        scope = f"/us-east-1/{'cognito-sync' if service == 'sync' else 'cognito-identity'}/"
        return auth.startswith("AWS4-HMAC-SHA256 Credential=") and scope in auth

    def _respond(self, shape: Any, result: dict[str, Any], service: str) -> web.Response:
        problems = check_shape(shape, result)
        if problems:
            self.shape_errors += problems
            return web.Response(status=500, text="; ".join(problems))
        if service == "identity":
            return web.json_response(result, content_type="application/x-amz-json-1.1")
        return web.json_response(result)

    def _check_query(self, request: web.Request, operation: str) -> None:
        names = {
            m.serialization.get("name")
            for m in SYNC_MODEL.operation_model(operation).input_shape.members.values()
            if m.serialization.get("location") == "querystring"
        }
        unknown = set(request.query) - names
        if unknown:
            self.shape_errors.append(f"{operation}: unknown query parameters {unknown}")

    async def _identity_api(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        name = target.removeprefix("AWSCognitoIdentityService.")
        handlers = {
            "ListIdentities": self._list_identities,
            "DescribeIdentityPool": self._describe_identity_pool,
            "LookupDeveloperIdentity": self._lookup_developer_identity,
        }
        if not target.startswith("AWSCognitoIdentityService.") or name not in handlers:
            return self._error("identity", "UnknownOperationException", target, 400)
        if not self._signed(request, "identity"):
            return self._error("identity", "NotAuthorizedException", "Missing signature", 400)
        params = json.loads(await request.read())
        operation = IDENTITY_MODEL.operation_model(name)
        problems = check_shape(operation.input_shape, params)
        if problems:
            self.shape_errors += problems
            return self._error("identity", "ValidationException", "; ".join(problems), 400)
        if params["IdentityPoolId"] != self.pool_id:
            message = f"IdentityPool '{params['IdentityPoolId']}' not found."
            return self._error("identity", "ResourceNotFoundException", message, 400)
        throttled = self._count(name, "identity")
        if throttled is not None:
            return throttled
        result = handlers[name](params)
        if "__type" in result:
            return self._error("identity", result["__type"], result["message"], 400)
        return self._respond(operation.output_shape, result, "identity")

    def _list_identities(self, params: dict[str, Any]) -> dict[str, Any]:
        ids = sorted(self.identities)
        start = int(base64.b64decode(params["NextToken"])) if params.get("NextToken") else 0
        size = min(params["MaxResults"], self.identity_page_cap)
        page = ids[start : start + size]
        result: dict[str, Any] = {
            "IdentityPoolId": self.pool_id,
            "Identities": [
                {
                    "IdentityId": i,
                    "Logins": [self.developer_provider]
                    if self.developer_users.get(i) and self.developer_provider
                    else [],
                    "CreationDate": 1.6e9,
                    "LastModifiedDate": 1.6e9,
                }
                for i in page
            ],
        }
        if start + size < len(ids):
            result["NextToken"] = base64.b64encode(str(start + size).encode()).decode()
        return result

    def _describe_identity_pool(self, params: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {
            "IdentityPoolId": self.pool_id,
            "IdentityPoolName": "fake_pool",
            "AllowUnauthenticatedIdentities": True,
            "AllowClassicFlow": False,
        }
        if self.developer_provider:
            result["DeveloperProviderName"] = self.developer_provider
        return result

    def _lookup_developer_identity(self, params: dict[str, Any]) -> dict[str, Any]:
        identity_id = params.get("IdentityId")
        if identity_id is None or identity_id not in self.identities:
            return {"__type": "ResourceNotFoundException", "message": "no such identity"}
        users = sorted(self.developer_users.get(identity_id, []))
        if not users:
            return {"__type": "ResourceNotFoundException", "message": "no developer identity"}
        start = int(params["NextToken"]) if params.get("NextToken") else 0
        size = min(params.get("MaxResults", 60), self.lookup_page_cap)
        result: dict[str, Any] = {
            "IdentityId": identity_id,
            "DeveloperUserIdentifierList": users[start : start + size],
        }
        if start + size < len(users):
            result["NextToken"] = str(start + size)
        return result

    def _sync_target(self, request: web.Request) -> tuple[dict[str, FakeDataset] | None, Any]:
        if not self._signed(request, "sync"):
            return None, self._error("sync", "NotAuthorizedException", "Missing signature", 403)
        if request.match_info["pool"] != self.pool_id:
            return None, self._error("sync", "ResourceNotFoundException", "no such pool", 404)
        identity = self.identities.get(request.match_info["identity"])
        if identity is None:
            return None, self._error("sync", "ResourceNotFoundException", "no identity", 404)
        return identity, None

    async def _list_datasets(self, request: web.Request) -> web.Response:
        self._check_query(request, "ListDatasets")
        identity, error = self._sync_target(request)
        if identity is None:
            return error  # type: ignore[no-any-return]
        throttled = self._count("ListDatasets", "sync")
        if throttled is not None:
            return throttled
        names = sorted(identity)
        start = int(request.query.get("nextToken", "0"))
        size = min(int(request.query.get("maxResults", "64")), self.dataset_page_cap)
        identity_id = request.match_info["identity"]
        result: dict[str, Any] = {
            "Datasets": [
                {
                    "IdentityId": identity_id,
                    "DatasetName": name,
                    "CreationDate": identity[name].created,
                    "LastModifiedDate": identity[name].modified,
                    "LastModifiedBy": identity_id,
                    "DataStorage": sum(
                        len(r.key.encode()) + len((r.value or "").encode())
                        for r in identity[name].records.values()
                    ),
                    "NumRecords": len(identity[name].records),
                }
                for name in names[start : start + size]
            ],
            "Count": len(names[start : start + size]),
        }
        if start + size < len(names):
            result["NextToken"] = str(start + size)
        return self._respond(
            SYNC_MODEL.operation_model("ListDatasets").output_shape, result, "sync"
        )

    async def _list_records(self, request: web.Request) -> web.Response:
        self._check_query(request, "ListRecords")
        identity, error = self._sync_target(request)
        if identity is None:
            return error  # type: ignore[no-any-return]
        throttled = self._count("ListRecords", "sync")
        if throttled is not None:
            return throttled
        name = request.match_info["name"]
        since = int(request.query.get("lastSyncCount", "0"))
        dataset = identity.get(name)
        if dataset is None:
            result = {"Records": [], "Count": 0, "DatasetSyncCount": 0, "DatasetExists": False}
            return self._respond(
                SYNC_MODEL.operation_model("ListRecords").output_shape, result, "sync"
            )
        if since > dataset.sync_count:
            message = f"No such SyncCount: {since} exists for this Dataset"
            return self._error("sync", "InvalidParameterException", message, 400)
        changed = sorted(
            (r for r in dataset.records.values() if r.sync_count > since),
            key=lambda r: (r.sync_count, r.key),
        )
        start = int(request.query.get("nextToken", "0"))
        size = min(int(request.query.get("maxResults", "1024")), self.record_page_cap)
        page = changed[start : start + size]
        records = []
        for r in page:
            item: dict[str, Any] = {
                "Key": r.key,
                "SyncCount": r.sync_count,
                "LastModifiedDate": r.modified,
                "LastModifiedBy": r.modified_by,
            }
            if r.value is not None:
                item["Value"] = r.value
            if r.device_modified is not None:
                item["DeviceLastModifiedDate"] = r.device_modified
            records.append(item)
        merged = sorted(n for n in identity if n.startswith(name + ".") and n != name)
        result = {
            "Records": records,
            "Count": len(records),
            "DatasetSyncCount": dataset.sync_count,
            "LastModifiedBy": request.match_info["identity"],
            "MergedDatasetNames": merged,
            "DatasetExists": True,
            "DatasetDeletedAfterRequestedSyncCount": False,
            "SyncSessionToken": "session-" + uuid.uuid4().hex,
        }
        if start + size < len(changed):
            result["NextToken"] = str(start + size)
        return self._respond(SYNC_MODEL.operation_model("ListRecords").output_shape, result, "sync")


class FakeCognitoServer:
    """Runs a `FakeCognito` on its own event-loop thread; ``url`` once started."""

    def __init__(self, state: FakeCognito) -> None:
        self.state = state
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> FakeCognitoServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.state.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def __exit__(self, *_exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
