"""The `cogsync serve` target of `cogsync migrate`: a server reached through its admin API.

`ServerTarget` sends each dataset as one ``POST /admin/import`` (one transaction on the
server, idempotent) and reads datasets back with ``POST /admin/export`` for verification;
developer logins go through ``/admin/developer-logins/import`` and ``.../export``,
both SigV4-signed (service ``cogsync-admin``) with the server's admin key from
``DIR/admin.json``. Server answers are translated here: refused signature ->
`NotAuthorizedError`, a dataset over the server's limits -> `LimitExceededError`, bad
input -> `UsageError`, no connection -> `OfflineError`, anything else -> `ServerError`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cogsync.config import Config
from cogsync.exceptions import (
    ConfigError,
    LimitExceededError,
    NotAuthorizedError,
    OfflineError,
    ServerError,
    UsageError,
)
from cogsync.migrate.source import SourceRecords
from cogsync.migrate.target import TargetDataset, datetime_text

__all__ = ["ServerTarget"]

_ADMIN_SERVICE = "cogsync-admin"


def _load_admin(path: Path) -> Credentials:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read admin credentials {path}: {exc.strerror}: pass the admin.json that "
            "`cogsync serve` wrote in its --data directory"
        ) from exc
    except ValueError as exc:
        raise ConfigError(f"admin credentials {path} are not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) and data.get(k) for k in ("access_key_id", "secret_access_key")
    ):
        raise ConfigError(
            f"admin credentials {path} lack access_key_id / secret_access_key: pass the "
            "admin.json that `cogsync serve` wrote in its --data directory"
        )
    return Credentials(data["access_key_id"], data["secret_access_key"])


class ServerTarget:
    """A `cogsync serve` server reached through its signed admin API.

    Args:
        config_path: the server's client config (``cogsync.json``).
        admin_credentials_path: the server's ``DIR/admin.json``.
        timeout: seconds to connect and to wait for each answer.
    """

    def __init__(
        self, config_path: str | Path, admin_credentials_path: str | Path, *, timeout: float = 60
    ) -> None:
        self.config = Config.load(config_path)
        self._credentials = _load_admin(Path(admin_credentials_path))
        self._base = self.config.graphql_url
        self.description = f"cogsync server {urljoin(self._base, '/')}"
        self._http = urllib3.PoolManager(
            maxsize=32,
            timeout=urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
            retries=False,
        )

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        url = urljoin(self._base, path)
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        request = AWSRequest(
            method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
        )
        SigV4Auth(self._credentials, _ADMIN_SERVICE, self.config.region).add_auth(request)
        try:
            response = self._http.request(
                "POST", url, body=body, headers=dict(request.headers.items())
            )
        except urllib3.exceptions.HTTPError as exc:
            raise OfflineError(
                f"cannot reach the cogsync server at {url} ({type(exc).__name__}): is "
                "`cogsync serve` running there? Run again once it is (the checkpoint keeps "
                "finished work)"
            ) from exc
        try:
            data = json.loads(response.data or b"{}")
        except ValueError as exc:
            raise ServerError(
                f"the server answered {url} with HTTP {response.status} and no JSON: is the "
                "--to config the one `cogsync serve` wrote?"
            ) from exc
        if response.status == 200 and isinstance(data, dict):
            return data
        return self._raise(url, response.status, data)

    def _raise(self, url: str, status: int, data: Any) -> dict[str, Any]:
        kind = str(data.get("__type", "")) if isinstance(data, dict) else ""
        message = str(data.get("message", "")) if isinstance(data, dict) else ""
        if status in (401, 403):
            raise NotAuthorizedError(
                f"the server refused the admin credentials ({kind}: {message}): pass the "
                "admin.json of the server that --to points at"
            )
        if status == 404:
            raise ConfigError(
                f"{url} does not exist: the server at --to is not a cogsync server with the "
                "admin API (upgrade it)"
            )
        if kind == "LimitExceededException":
            raise LimitExceededError(message)
        if status == 400:
            raise UsageError(f"{kind}: {message}")
        raise ServerError(f"the server failed on {url} (HTTP {status} {kind}: {message})")

    def import_dataset(
        self, identity_id: str, name: str, data: SourceRecords, *, deleted: bool = False
    ) -> int:
        """Write one dataset through ``/admin/import``; return how many records changed."""
        payload = {
            "identityId": identity_id,
            "datasetName": name,
            "syncCount": data.sync_count,
            "deleted": deleted,
            "records": [
                {
                    "key": r.key,
                    "value": r.value,
                    "syncCount": r.sync_count,
                    "lastModifiedDate": datetime_text(r.last_modified_date),
                    "lastModifiedBy": r.last_modified_by,
                    "deviceLastModifiedDate": datetime_text(r.device_last_modified_date),
                }
                for r in data.records
            ],
        }
        return int(self._post("/admin/import", payload).get("written", 0))

    def import_developer_logins(self, identity_id: str, users: list[str]) -> str:
        """Link developer user ids to an identity; return the server's developer provider."""
        payload = {"identityId": identity_id, "users": users}
        return str(self._post("/admin/developer-logins/import", payload).get("provider", ""))

    def export_developer_logins(self, identity_id: str) -> list[str]:
        """The developer user ids the server links to an identity."""
        data = self._post("/admin/developer-logins/export", {"identityId": identity_id})
        return sorted(str(u) for u in data.get("users", []))

    def export_dataset(self, identity_id: str, name: str) -> TargetDataset:
        """Read one dataset through ``/admin/export``."""
        data = self._post("/admin/export", {"identityId": identity_id, "datasetName": name})
        pairs = tuple((str(r["key"]), r.get("value")) for r in data.get("records", []))
        return TargetDataset(bool(data.get("exists")), int(data.get("syncCount", 0)), pairs)
