"""The source of `cogsync migrate`: `CognitoSyncSource` reads a pool out of Cognito Sync.

It yields the pool's identities, their datasets (`SourceDataset`) and each dataset's
records (`SourceRecords` of `SourceRecord`), as plain values the targets import.

Everything goes through boto3's own clients: ``cognito-identity`` ``ListIdentities`` (60
identities a page, with the login providers of each), ``DescribeIdentityPool`` (the pool's
developer provider) and ``LookupDeveloperIdentity`` (the developer user ids linked to an
identity, paged), and ``cognito-sync`` ``ListDatasets`` / ``ListRecords`` (paged on
``NextToken``; ``ListRecords`` from a ``lastSyncCount`` so a re-run reads only changes).
Throttling (``TooManyRequestsException``, ``LimitExceededException``) and dropped
connections are retried with capped exponential backoff; botocore's own retries are off so
that this module decides. Foreign errors are translated at this boundary: a pool or
identity the service does not know -> `ConfigError`, refused or missing credentials ->
`NotAuthorizedError`, an unreachable service -> `OfflineError`, anything else ->
`ServerError`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from cogsync._awsdatetime import as_utc
from cogsync._backoff import backoff_delays
from cogsync._boto_errors import (
    BOTO_ERRORS,
    client_error_code,
    is_unreachable,
    translate_boto_error,
)
from cogsync.exceptions import (
    CogsyncError,
    ConfigError,
    NotAuthorizedError,
    OfflineError,
    ServerError,
)

__all__ = [
    "CognitoSyncSource",
    "SourceDataset",
    "SourceRecord",
    "SourceRecords",
    "SyncCountGone",
    "validate_pool_id",
]

_POOL_ID_RE = re.compile(r"[\w-]+:[0-9a-f-]+")
_THROTTLED = frozenset({"TooManyRequestsException", "LimitExceededException", "Throttling"})
_REFUSED = frozenset(
    {
        "NotAuthorizedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "AccessDeniedException",
        "InvalidSignatureException",
        "ExpiredTokenException",
    }
)
_CONNECT_ATTEMPTS = 3
_CLIENT_ERRORS: tuple[type[Exception], ...] = (*BOTO_ERRORS, ValueError)
"""What making a boto3 client may raise (an unknown region, a malformed endpoint URL)."""
_UNKNOWN = frozenset({"ResourceNotFoundException", "InvalidParameterException"})


def _no_credentials(exc: Exception) -> CogsyncError:
    return NotAuthorizedError(
        "no AWS credentials found for the source: set AWS_PROFILE or "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY to an IAM user allowed "
        "cognito-identity:ListIdentities, DescribeIdentityPool, LookupDeveloperIdentity and "
        "cognito-sync:List*"
    )


class _NoDeveloperUser(ConfigError):
    """``LookupDeveloperIdentity`` found no developer user linked to the identity."""


class SyncCountGone(ServerError):
    """``ListRecords`` refused a ``lastSyncCount`` above the dataset's (it was re-created)."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One Cognito Sync record; ``value`` None is a deleted record (a tombstone)."""

    key: str
    value: str | None
    sync_count: int
    last_modified_date: datetime | None
    last_modified_by: str | None
    device_last_modified_date: datetime | None


@dataclass(frozen=True, slots=True)
class SourceDataset:
    """A dataset as ``ListDatasets`` reports it (merged datasets carry ``.<identityId>``)."""

    identity_id: str
    name: str
    last_modified_date: datetime | None
    data_storage: int
    num_records: int


@dataclass(frozen=True, slots=True)
class SourceRecords:
    """Every record of a dataset changed after a sync count, and the dataset's sync count.

    ``exists`` is False when the dataset vanished (deleted) before it could be read.
    """

    sync_count: int
    records: tuple[SourceRecord, ...]
    exists: bool = True
    merged_dataset_names: tuple[str, ...] = ()


def validate_pool_id(pool_id: str) -> str:
    """Return ``pool_id`` if it looks like ``region:uuid``, else raise `ConfigError`."""
    if not (1 <= len(pool_id) <= 55 and _POOL_ID_RE.fullmatch(pool_id)):
        raise ConfigError(
            f"--identity-pool-id {pool_id!r} is not an identity pool id: expected "
            "REGION:GUID as shown in the Cognito console (e.g. us-east-1:0f2c...)"
        )
    return pool_id


def _utc(value: object) -> datetime | None:
    """A date boto3 parsed, in UTC to the millisecond as Cognito keeps it (None if absent)."""
    if not isinstance(value, datetime):
        return None
    utc = as_utc(value)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def _cognito_clients(
    session: boto3.session.Session, region: str, endpoint_url: str | None, timeout: float
) -> tuple[Any, Any]:
    """The ``cognito-identity`` and ``cognito-sync`` clients, botocore's retries off."""
    boto = BotoConfig(
        retries={"total_max_attempts": 1},
        connect_timeout=timeout,
        read_timeout=timeout,
        max_pool_connections=64,
    )
    try:
        options: dict[str, Any] = {"region_name": region, "endpoint_url": endpoint_url}
        identity = session.client("cognito-identity", config=boto, **options)
        return identity, session.client("cognito-sync", config=boto, **options)
    except _CLIENT_ERRORS as exc:
        raise ConfigError(f"cannot reach Cognito in region {region!r}: {exc}") from exc


class CognitoSyncSource:
    """Read-only access to one identity pool's Cognito Sync data.

    Args:
        identity_pool_id: the pool to read (``region:uuid``).
        region: the AWS region of the pool.
        endpoint_url: one URL serving both Cognito Identity and Cognito Sync (a test
            double or a proxy); None means AWS's regional endpoints.
        session: the boto3 session holding the developer (IAM) credentials; None builds
            one from the environment (``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID`` ...).
        max_attempts: attempts per call when throttled or disconnected.
        page_size: ``maxResults`` for ``ListDatasets`` / ``ListRecords``.
        sleep: the function that waits between attempts (for tests).
        timeout: seconds to connect and to wait for each answer.
    """

    def __init__(
        self,
        identity_pool_id: str,
        region: str,
        *,
        endpoint_url: str | None = None,
        session: boto3.session.Session | None = None,
        max_attempts: int = 8,
        page_size: int = 64,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 20.0,
    ) -> None:
        self.identity_pool_id = validate_pool_id(identity_pool_id)
        self.region = region
        self.endpoint_url = endpoint_url
        self._identity, self._sync = _cognito_clients(
            session or boto3.session.Session(), region, endpoint_url, timeout
        )
        self.page_size = page_size
        self.max_attempts = max_attempts
        self.throttled = 0
        self._sleep = sleep
        self.identity_logins: dict[str, tuple[str, ...]] = {}
        """Identity id -> the login providers ``ListIdentities`` named (filled while paging)."""
        self._developer_provider: tuple[str | None] | None = None
        self._provider_lock = threading.Lock()

    def _call(self, what: str, func: Callable[..., Any], **params: Any) -> Any:
        """Run one boto3 call, retrying throttling and dropped connections with backoff."""
        delays = backoff_delays(initial=0.05, maximum=5.0)
        for attempt in range(1, self.max_attempts + 1):
            try:
                return func(**params)
            except BOTO_ERRORS as exc:
                if isinstance(exc, ClientError) and client_error_code(exc)[0] in _THROTTLED:
                    if attempt < self.max_attempts:
                        self.throttled += 1
                        self._sleep(next(delays))
                        continue
                elif is_unreachable(exc) and attempt < min(self.max_attempts, _CONNECT_ATTEMPTS):
                    self._sleep(next(delays))
                    continue
                raise translate_boto_error(
                    exc,
                    answered=partial(self._answered, what),
                    unreachable=self._unreachable,
                    failed=lambda e: ServerError(f"{what} failed: {e}"),
                    no_credentials=_no_credentials,
                    bad_parameters=lambda e: ConfigError(f"{what}: {e}"),
                ) from exc
        raise ServerError(f"{what}: still throttled after {self.max_attempts} attempts; run again")

    def _answered(self, what: str, code: str, message: str, exc: ClientError) -> CogsyncError:
        if code in _REFUSED:
            return NotAuthorizedError(
                f"Cognito refused the source credentials ({code}: {message}): use an IAM "
                "identity allowed cognito-identity:ListIdentities, DescribeIdentityPool, "
                "LookupDeveloperIdentity and cognito-sync:List*"
            )
        if code == "ResourceNotFoundException" and what == "LookupDeveloperIdentity":
            return _NoDeveloperUser(f"{what}: {message}")
        if code in _UNKNOWN and what in ("ListIdentities", "DescribeIdentityPool"):
            return ConfigError(
                f"identity pool {self.identity_pool_id} not found in {self.region} "
                f"({code}: {message}): check --identity-pool-id and --region"
            )
        if code == "InvalidParameterException" and "SyncCount" in message:
            return SyncCountGone(f"{what}: {message}")
        if code in _THROTTLED:
            return ServerError(f"{what}: Cognito kept throttling ({code}); run again later")
        return ServerError(f"{what} failed ({code or 'unknown error'}: {message})")

    def _unreachable(self, exc: Exception) -> CogsyncError:
        return OfflineError(
            f"cannot reach Cognito at {self.endpoint_url or 'AWS ' + self.region} "
            f"({type(exc).__name__}): check --region / --source-endpoint-url and the "
            "network, then run again (finished work is kept in the checkpoint)"
        )

    def identity_pages(self) -> Iterator[list[str]]:
        """Yield the pool's identity ids, one ``ListIdentities`` page (up to 60) at a time."""
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "IdentityPoolId": self.identity_pool_id,
                "MaxResults": 60,
                "HideDisabled": False,
            }
            if token:
                params["NextToken"] = token
            page = self._call("ListIdentities", self._identity.list_identities, **params)
            identities = page.get("Identities", [])
            for item in identities:
                logins = tuple(str(p) for p in item.get("Logins") or ())
                self.identity_logins[str(item["IdentityId"])] = logins
            yield [str(i["IdentityId"]) for i in identities]
            token = page.get("NextToken")
            if not token:
                return

    def developer_provider(self) -> str | None:
        """The pool's developer provider name (``DescribeIdentityPool``, asked once), None if
        it has none."""
        with self._provider_lock:
            if self._developer_provider is None:
                pool = self._call(
                    "DescribeIdentityPool",
                    self._identity.describe_identity_pool,
                    IdentityPoolId=self.identity_pool_id,
                )
                name = pool.get("DeveloperProviderName")
                self._developer_provider = (str(name) if name else None,)
            return self._developer_provider[0]

    def developer_users(self, identity_id: str) -> list[str]:
        """The developer user ids linked to an identity (``LookupDeveloperIdentity``, all pages).

        Empty when the identity has no developer login (the pool answers
        ``ResourceNotFoundException`` then).
        """
        users: list[str] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "IdentityPoolId": self.identity_pool_id,
                "IdentityId": identity_id,
                "MaxResults": 60,
            }
            if token:
                params["NextToken"] = token
            try:
                page = self._call(
                    "LookupDeveloperIdentity", self._identity.lookup_developer_identity, **params
                )
            except _NoDeveloperUser:
                if users:
                    raise
                return []  # the identity has no developer user (ResourceNotFoundException)
            users += [str(u) for u in page.get("DeveloperUserIdentifierList") or ()]
            token = page.get("NextToken")
            if not token:
                return sorted(set(users))

    def datasets(self, identity_id: str) -> list[SourceDataset]:
        """Every dataset of one identity (``ListDatasets``, all pages)."""
        found: list[SourceDataset] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "IdentityPoolId": self.identity_pool_id,
                "IdentityId": identity_id,
                "MaxResults": self.page_size,
            }
            if token:
                params["NextToken"] = token
            page = self._call("ListDatasets", self._sync.list_datasets, **params)
            for item in page.get("Datasets", []):
                found.append(
                    SourceDataset(
                        identity_id=identity_id,
                        name=str(item["DatasetName"]),
                        last_modified_date=_utc(item.get("LastModifiedDate")),
                        data_storage=int(item.get("DataStorage", 0)),
                        num_records=int(item.get("NumRecords", 0)),
                    )
                )
            token = page.get("NextToken")
            if not token:
                return found

    def records(self, identity_id: str, dataset_name: str, since: int = 0) -> SourceRecords:
        """Every record of a dataset whose sync count is above ``since`` (all pages).

        Tombstones (null values) are included. The dataset sync count is the highest of
        ``DatasetSyncCount`` across pages and the records' own counts.
        """
        records: dict[str, SourceRecord] = {}
        sync_count = since
        merged: tuple[str, ...] = ()
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "IdentityPoolId": self.identity_pool_id,
                "IdentityId": identity_id,
                "DatasetName": dataset_name,
                "LastSyncCount": since,
                "MaxResults": self.page_size,
            }
            if token:
                params["NextToken"] = token
            page = self._call("ListRecords", self._sync.list_records, **params)
            if page.get("DatasetExists") is False:
                return SourceRecords(sync_count=since, records=(), exists=False)
            sync_count = max(sync_count, int(page.get("DatasetSyncCount") or 0))
            merged = tuple(page.get("MergedDatasetNames") or merged)
            for item in page.get("Records", []):
                record = SourceRecord(
                    key=str(item["Key"]),
                    value=item.get("Value"),
                    sync_count=int(item.get("SyncCount") or 0),
                    last_modified_date=_utc(item.get("LastModifiedDate")),
                    last_modified_by=item.get("LastModifiedBy"),
                    device_last_modified_date=_utc(item.get("DeviceLastModifiedDate")),
                )
                old = records.get(record.key)
                if old is None or record.sync_count >= old.sync_count:
                    records[record.key] = record
                sync_count = max(sync_count, record.sync_count)
            token = page.get("NextToken")
            if not token:
                ordered = sorted(records.values(), key=lambda r: (r.sync_count, r.key))
                return SourceRecords(sync_count, tuple(ordered), True, merged)
