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

Errors answer ``{"__type", "message"}`` with HTTP 400 (bad input, ``LimitExceededException``)
or 401/403 (signature).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from cogsync.exceptions import LimitExceededError, UsageError
from cogsync.limits import (
    check_dataset_count,
    check_dataset_totals,
    validate_key,
    validate_name,
    validate_value,
)
from cogsync.models import Record
from cogsync.server.credentials import IdentityDatabase
from cogsync.server.identity import signed_request
from cogsync.server.sigv4 import SignatureRejected
from cogsync.server.storage import DatasetChange, ServerStorage

__all__ = ["ADMIN_SERVICE", "MAX_ADMIN_BODY", "ImportResult", "admin_routes", "import_dataset"]

ADMIN_SERVICE = "cogsync-admin"
"""The SigV4 service name admin requests are signed for."""
MAX_ADMIN_BODY = 16 * 1024 * 1024
"""The largest admin request body accepted (a full dataset is at most ~1 MB of data)."""

_ID_RE = re.compile(r"[\w-]+:[0-9a-f-]+")
_MERGED_RE = re.compile(r"(?P<base>.+)\.(?P<source>[\w-]+:[0-9a-f-]+)")
_MAX_SYNC_COUNT = 2**62


class _BadImport(UsageError):
    """An admin request body that does not describe a dataset."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What one import did: the dataset's sync count after it and the records written."""

    sync_count: int
    written: int
    applied: bool


def _parse_ms(value: object, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _BadImport(f"{what} must be an ISO-8601 date string or null")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _BadImport(f"{what} {value[:40]!r} is not an ISO-8601 date") from exc
    if parsed.tzinfo is None:
        raise _BadImport(f"{what} {value[:40]!r} lacks a timezone: use ...Z")
    return int(parsed.timestamp() * 1000)


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_SYNC_COUNT:
        raise _BadImport(f"{what} must be a non-negative integer")
    return value


def _parse_record(item: object, now_ms: int) -> tuple[Any, ...]:
    if not isinstance(item, dict):
        raise _BadImport("each record must be a JSON object")
    key = validate_key(item.get("key"))
    value = item.get("value")
    if value is not None:
        validate_value(value)
    modified = _parse_ms(item.get("lastModifiedDate"), f"lastModifiedDate of {key[:40]!r}")
    by = item.get("lastModifiedBy")
    if by is not None and not isinstance(by, str):
        raise _BadImport(f"lastModifiedBy of {key[:40]!r} must be a string or null")
    device = _parse_ms(
        item.get("deviceLastModifiedDate"), f"deviceLastModifiedDate of {key[:40]!r}"
    )
    count = _count(item.get("syncCount", 0), f"syncCount of {key[:40]!r}")
    return (key, value, count, modified if modified is not None else now_ms, by, device)


def import_dataset(
    storage: ServerStorage,
    identities: IdentityDatabase,
    body: dict[str, Any],
    *,
    now: float,
) -> ImportResult:
    """Apply one import request (see the module docstring) in one storage transaction.

    Records keep their own sync counts when the dataset was written by imports only; if
    devices already pushed to it on this server (its sync count is above the imported one),
    changed records get a new sync count instead so every device still pulls them.

    Raises:
        UsageError: a malformed body, name, key or value.
        LimitExceededError: the dataset would break the server's limits; nothing written.
    """
    identity_id = body.get("identityId")
    if not isinstance(identity_id, str) or not _ID_RE.fullmatch(identity_id):
        raise _BadImport("identityId must be an identity id 'region:uuid'")
    name = validate_name(body.get("datasetName"), storage.limits)
    source_count = _count(body.get("syncCount", 0), "syncCount")
    deleted = body.get("deleted", False) is True
    items = body.get("records", [])
    if not isinstance(items, list):
        raise _BadImport("records must be a list")
    now_ms = int(now * 1000)
    incoming = {row[0]: row for row in (_parse_record(item, now_ms) for item in items)}
    _ensure_identity(identities, identity_id, now)
    if deleted:
        return _import_deletion(storage, identity_id, name, source_count)
    limits = storage.limits
    with storage._transaction() as db:
        row = db.execute(
            "SELECT sync_count, deleted FROM datasets WHERE identity_id=? AND name=?",
            (identity_id, name),
        ).fetchone()
        stored = {
            r[0]: tuple(r)
            for r in db.execute(
                "SELECT key, value, sync_count, last_modified_date, last_modified_by, "
                "device_last_modified_date FROM records WHERE identity_id=? AND dataset=?",
                (identity_id, name),
            )
        }
        current = row[0] if row else 0
        moved_on = current > source_count  # devices pushed here since the last import
        changed = [r for k, r in incoming.items() if _differs(stored.get(k), r, moved_on)]
        top = max([source_count, *(r[2] for r in incoming.values())])
        if not changed and (row is None or not row[1]) and top <= current:
            return ImportResult(current, 0, applied=False)
        if row is None or row[1]:
            check_dataset_count(storage._live_dataset_count(identity_id) + 1, limits)
        record_count, size = check_dataset_totals(
            name, {k: r[1] for k, r in stored.items()}, {r[0]: r[1] for r in changed}, limits
        )
        if moved_on:  # stamp changes with a new count so every device pulls them
            new_count = current + (1 if changed else 0)
            changed = [(*r[:2], new_count, *r[3:]) for r in changed]
        else:
            new_count = top
        db.executemany(
            "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(identity_id, name, *r) for r in changed],
        )
        merged = _MERGED_RE.fullmatch(name)
        when = datetime.fromtimestamp(now, UTC)
        storage._save_dataset(
            identity_id,
            name,
            new_count,
            size,
            record_count,
            when,
            merged_into=merged.group("base") if merged else None,
        )
        if changed:
            change = DatasetChange(identity_id, name, new_count, False)
            storage._log(change, None, when, [r[0] for r in changed])
        return ImportResult(new_count, len(changed), applied=True)


def _differs(stored: tuple[Any, ...] | None, incoming: tuple[Any, ...], moved_on: bool) -> bool:
    if stored is None:
        return True
    if moved_on:  # sync counts were restamped here; compare the data only
        return stored[:2] != incoming[:2] or stored[3:] != incoming[3:]
    return stored != incoming


def _import_deletion(
    storage: ServerStorage, identity_id: str, name: str, source_count: int
) -> ImportResult:
    request_id = f"cogsync-migrate:{name}:{source_count}"
    change = storage.delete_dataset(identity_id, name, client_request_id=request_id)
    return ImportResult(change.sync_count, len(change.records), applied=change.applied)


def _ensure_identity(identities: IdentityDatabase, identity_id: str, now: float) -> None:
    if identities.identity(identity_id) is not None:
        return
    with identities._lock:
        identities._db.execute(
            "INSERT OR IGNORE INTO identities (identity_id, created, modified) VALUES (?, ?, ?)",
            (identity_id, now, now),
        )


def export_dataset(storage: ServerStorage, body: dict[str, Any]) -> dict[str, Any]:
    """Every record of one dataset (tombstones included) with its sync count, as JSON."""
    identity_id = body.get("identityId")
    if not isinstance(identity_id, str) or not _ID_RE.fullmatch(identity_id):
        raise _BadImport("identityId must be an identity id 'region:uuid'")
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


async def _read_body(request: web.Request) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > MAX_ADMIN_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(error_type: str, message: str, status: int) -> web.Response:
    return web.json_response({"__type": error_type, "message": message}, status=status)


def admin_routes(
    storage: ServerStorage,
    identities: IdentityDatabase,
    *,
    clock: Callable[[], float] = time.time,
) -> list[web.RouteDef]:
    """The admin routes, to add with ``app.add_routes(admin_routes(storage, identities))``.

    Args:
        storage: the server's datasets.
        identities: the identity database holding the admin key and identities.
        clock: epoch seconds, for signature checks and server timestamps.
    """

    async def handle(request: web.Request, operation: Callable[[dict[str, Any]], Any]) -> Any:
        body = await _read_body(request)
        if body is None:
            return _error("BadRequestException", "admin request body larger than 16 MB", 413)
        try:
            key = await asyncio.to_thread(
                identities.authenticate,
                signed_request(request, body),
                service=ADMIN_SERVICE,
                now=clock(),
            )
            if not key.is_admin:
                raise SignatureRejected(
                    "NotAuthorizedException",
                    "the admin API needs the server's admin credentials (DIR/admin.json)",
                )
            params = json.loads(body)
            if not isinstance(params, dict):
                raise _BadImport("the request body must be a JSON object")
            result = await asyncio.to_thread(operation, params)
        except SignatureRejected as exc:
            return _error(exc.error_type, exc.message, exc.status)
        except LimitExceededError as exc:
            return _error("LimitExceededException", str(exc), 400)
        except (UsageError, ValueError) as exc:
            return _error("InvalidParameterException", str(exc), 400)
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

    return [web.post("/admin/import", do_import), web.post("/admin/export", do_export)]
