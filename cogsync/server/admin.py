"""The admin API of `cogsync serve`: importing and exporting datasets for `cogsync migrate`.

Two routes, each a JSON ``POST`` SigV4-signed (service ``cogsync-admin``) with the server's
admin key (``DIR/admin.json``):

* ``/admin/import``: write one dataset of one identity as another system held it: keys,
  values (null = tombstone), record sync counts, last modified date/by and device modified
  date, and the dataset's sync count. The identity is created with that very id if the
  server does not know it, so a device keeping its identity id (or a developer login linked
  to it with GetOpenIdTokenForDeveloperIdentity ``IdentityId=``) syncs it normally.
  An import is one transaction, checked against the server's limits first, and idempotent:
  only records that differ are written, and importing the same data again changes
  nothing. ``deleted: true`` turns the dataset into a tombstone.
* ``/admin/export``: every record of one dataset (tombstones included) and its sync count,
  for verification.
* ``/admin/developer-logins/import``: link developer user ids (``users``) to an identity
  (created with its id if absent) under the server's developer provider, so that
  GetOpenIdTokenForDeveloperIdentity for such a user returns that identity. All or nothing,
  idempotent; a user linked to another identity is refused (``ResourceConflictException``).
* ``/admin/developer-logins/export``: the developer user ids linked to an identity.

Errors answer ``{"__type", "message"}`` with HTTP 400 (bad input, ``LimitExceededException``)
or 401/403 (signature).

This module only parses and checks the request, then calls the owners of the files:
`ServerStorage.import_dataset` / `ServerStorage.list_records` for the data and
`IdentityDatabase.ensure_identity` / `IdentityDatabase.import_logins` for the identity.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from cogsync._awsdatetime import as_utc, parse_datetime
from cogsync.exceptions import LimitExceededError, UsageError
from cogsync.limits import validate_key, validate_name, validate_value
from cogsync.models import Record
from cogsync.server.access import Authenticator
from cogsync.server.connections import body_deadline
from cogsync.server.credentials import IdentityDatabase, LoginConflictError
from cogsync.server.sigv4 import SignatureRejected
from cogsync.server.storage import ImportResult, ServerStorage
from cogsync.server.wire import (
    InvalidRequestError,
    RequestRefused,
    aws_error_response,
    decode_json,
)

__all__ = [
    "ADMIN_SERVICE",
    "MAX_ADMIN_BODY",
    "ImportResult",
    "admin_routes",
    "export_dataset",
    "import_dataset",
    "import_developer_logins",
]

ADMIN_SERVICE = "cogsync-admin"
"""The SigV4 service name admin requests are signed for."""
MAX_ADMIN_BODY = 16 * 1024 * 1024
"""The largest admin request body accepted (a full dataset is at most ~1 MB of data)."""

_ID_RE = re.compile(r"[\w-]+:[0-9a-f-]+")
_MAX_SYNC_COUNT = 2**62


def _parse_date(value: object, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(f"{what} must be an ISO-8601 date string or null")
    try:
        return parse_datetime(value)
    except ValueError:
        pass  # not AppSync's form: any other ISO-8601 spelling with a zone is accepted too
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequestError(f"{what} {value[:40]!r} is not an ISO-8601 date") from exc
    if parsed.tzinfo is None:
        raise InvalidRequestError(f"{what} {value[:40]!r} lacks a timezone: use ...Z")
    return as_utc(parsed)


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_SYNC_COUNT:
        raise InvalidRequestError(f"{what} must be a non-negative integer")
    return value


def _identity_id(body: dict[str, Any]) -> str:
    identity_id = body.get("identityId")
    if not isinstance(identity_id, str) or not _ID_RE.fullmatch(identity_id):
        raise InvalidRequestError("identityId must be an identity id 'region:uuid'")
    return identity_id


def _parse_record(item: object) -> Record:
    if not isinstance(item, dict):
        raise InvalidRequestError("each record must be a JSON object")
    key = validate_key(item.get("key"))
    value = item.get("value")
    if value is not None:
        validate_value(value)
    modified = _parse_date(item.get("lastModifiedDate"), f"lastModifiedDate of {key[:40]!r}")
    by = item.get("lastModifiedBy")
    if by is not None and not isinstance(by, str):
        raise InvalidRequestError(f"lastModifiedBy of {key[:40]!r} must be a string or null")
    device = _parse_date(
        item.get("deviceLastModifiedDate"), f"deviceLastModifiedDate of {key[:40]!r}"
    )
    count = _count(item.get("syncCount", 0), f"syncCount of {key[:40]!r}")
    return Record(key, value, count, modified, by, device)


def import_dataset(
    storage: ServerStorage,
    identities: IdentityDatabase,
    body: dict[str, Any],
    *,
    now: float,
) -> ImportResult:
    """Apply one import request (see the module docstring) with `ServerStorage.import_dataset`.

    The identity is created with its very id first if the server does not know it.

    Raises:
        UsageError: a malformed body, name, key or value.
        LimitExceededError: the dataset would break the server's limits; nothing written.
    """
    identity_id = _identity_id(body)
    name = validate_name(body.get("datasetName"), storage.limits)
    source_count = _count(body.get("syncCount", 0), "syncCount")
    deleted = body.get("deleted", False) is True
    items = body.get("records", [])
    if not isinstance(items, list):
        raise InvalidRequestError("records must be a list")
    records = [_parse_record(item) for item in items]
    identities.ensure_identity(identity_id, now)
    return storage.import_dataset(
        identity_id,
        name,
        records,
        sync_count=source_count,
        deleted=deleted,
        now=datetime.fromtimestamp(now, UTC),
    )


def export_dataset(storage: ServerStorage, body: dict[str, Any]) -> dict[str, Any]:
    """Every record of one dataset (tombstones included) with its sync count, as JSON."""
    identity_id = _identity_id(body)
    name = validate_name(body.get("datasetName"), storage.limits)
    records: list[Record] = []
    token: str | None = None
    while True:
        page = storage.list_records(identity_id, name, 0, next_token=token)
        records.extend(page.records)
        token = page.next_token
        if token is None:
            break
    exists = page.sync_count > 0 or bool(records)
    return {
        "exists": exists and not page.deleted,
        "deleted": page.deleted,
        "syncCount": page.sync_count,
        "records": [
            {
                "key": r.key,
                "value": r.value,
                "syncCount": r.sync_count,
                "lastModifiedBy": r.last_modified_by,
            }
            for r in records
        ],
    }


def import_developer_logins(
    identities: IdentityDatabase, body: dict[str, Any], *, provider: str, now: float
) -> dict[str, Any]:
    """Link the developer user ids ``users`` to ``identityId`` under ``provider``.

    Raises:
        UsageError: a malformed body.
        LoginConflictError: a user is linked to another identity; nothing linked.
    """
    identity_id = _identity_id(body)
    users = body.get("users")
    if (
        not isinstance(users, list)
        or len(users) > 1000
        or not all(isinstance(u, str) and 1 <= len(u) <= 1024 for u in users)
    ):
        raise InvalidRequestError("users must be a list of up to 1000 developer user ids")
    linked = identities.import_logins(identity_id, provider, users, now)
    return {"provider": provider, "linked": linked}


async def _read_body(request: web.Request) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > MAX_ADMIN_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(refusal: RequestRefused) -> web.Response:
    return aws_error_response(refusal, content_type="application/json")


def admin_routes(
    storage: ServerStorage,
    identities: IdentityDatabase,
    *,
    clock: Callable[[], float] = time.time,
    developer_provider: str = "login.cogsync.dev",
) -> list[web.RouteDef]:
    """The admin routes, to add with ``app.add_routes(admin_routes(storage, identities))``.

    Args:
        storage: the server's datasets.
        identities: the identity database holding the admin key and identities.
        clock: epoch seconds, for signature checks and server timestamps.
        developer_provider: the provider imported developer logins are linked under (the
            one GetOpenIdTokenForDeveloperIdentity accepts).
    """
    authenticator = Authenticator(identities, clock)

    async def handle(request: web.Request, operation: Callable[[dict[str, Any]], Any]) -> Any:
        try:
            body = await body_deadline(request, _read_body(request))
        except RequestRefused as exc:
            return _error(exc)
        if body is None:
            too_large = "admin request body larger than 16 MB"
            return _error(RequestRefused("BadRequestException", too_large, 413))
        try:
            key = await authenticator.verify_request(request, body, service=ADMIN_SERVICE)
            if not key.is_admin:
                raise SignatureRejected(
                    "NotAuthorizedException",
                    "the admin API needs the server's admin credentials (DIR/admin.json)",
                )
            params = decode_json(body, error_type="SerializationException", what="the body")
            if not isinstance(params, dict):
                raise InvalidRequestError("the request body must be a JSON object")
            result = await asyncio.to_thread(operation, params)
        except RequestRefused as exc:
            return _error(exc)
        except LoginConflictError as exc:
            return _error(RequestRefused("ResourceConflictException", str(exc), 400))
        except LimitExceededError as exc:
            return _error(RequestRefused("LimitExceededException", str(exc), 400))
        except (UsageError, ValueError) as exc:
            return _error(RequestRefused("InvalidParameterException", str(exc), 400))
        return web.json_response(result)

    async def do_import(request: web.Request) -> web.StreamResponse:
        def run(params: dict[str, Any]) -> dict[str, Any]:
            result = import_dataset(storage, identities, params, now=clock())
            return {
                "syncCount": result.sync_count,
                "written": result.written,
                "applied": result.applied,
            }

        response: web.StreamResponse = await handle(request, run)
        return response

    async def do_export(request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = await handle(
            request, lambda params: export_dataset(storage, params)
        )
        return response

    async def do_link(request: web.Request) -> web.StreamResponse:
        def run(params: dict[str, Any]) -> dict[str, Any]:
            return import_developer_logins(
                identities, params, provider=developer_provider, now=clock()
            )

        response: web.StreamResponse = await handle(request, run)
        return response

    async def do_links(request: web.Request) -> web.StreamResponse:
        def run(params: dict[str, Any]) -> dict[str, Any]:
            users = identities.login_subjects(_identity_id(params), developer_provider)
            return {"provider": developer_provider, "users": users}

        response: web.StreamResponse = await handle(request, run)
        return response

    return [
        web.post("/admin/import", do_import),
        web.post("/admin/export", do_export),
        web.post("/admin/developer-logins/import", do_link),
        web.post("/admin/developer-logins/export", do_links),
    ]
