"""`CognitoIdentity`: a device's Cognito identity id and its temporary AWS credentials.

It speaks the Cognito Identity API through a botocore client (``cognito-identity``) to AWS or to
``cogsync serve``: ``GetId`` once (the id is cached and handed to ``on_identity`` so the
client can store it), then ``GetCredentialsForIdentity`` whenever the credentials are
missing or close to expiry. Both calls are unsigned, as Cognito expects; the logins
(developer-authenticated OpenID tokens or OIDC ID tokens) travel in the request body.

botocore blocks, so every call runs in a worker thread; the event loop never waits on it.
botocore's failures are translated here: refused logins -> `NotAuthorizedError`, an
identity the server does not know -> `IdentityNotFoundError` (a `NotAuthorizedError`),
no connection -> `OfflineError`, anything else -> `ServerError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore import UNSIGNED
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials

from cogsync._aws_session import new_client
from cogsync._boto_errors import BOTO_ERRORS, translate_boto_error
from cogsync._callbacks import maybe_await
from cogsync.config import Config
from cogsync.exceptions import (
    CogsyncError,
    ConfigError,
    NotAuthorizedError,
    OfflineError,
    ServerError,
)

__all__ = ["CognitoIdentity", "IdentityNotFoundError"]

log = logging.getLogger(__name__)

IdentityCallback = Callable[[str], Awaitable[None] | None]

_METHODS = {"GetId": "get_id", "GetCredentialsForIdentity": "get_credentials_for_identity"}


class IdentityNotFoundError(NotAuthorizedError):
    """The server does not know the cached identity id (e.g. the server's data was reset).

    Attributes:
        identity_id: the identity id the server refused.
    """

    def __init__(self, message: str, *, identity_id: str | None) -> None:
        super().__init__(message)
        self.identity_id = identity_id


class CognitoIdentity:
    """One device's identity in a Cognito identity pool, and credentials for it.

    Args:
        config: where the identity pool lives (``identity_endpoint`` None = AWS).
        logins: provider name -> token; None or empty for a guest identity.
        identity_id: an identity id obtained earlier (cached locally or kept from the
            Cognito Sync SDK); None asks the server with ``GetId``.
        on_identity: called with the identity id whenever one is obtained or changes
            (a plain function or a coroutine function).
        refresh_margin: renew credentials this long before they expire.
        clock: returns the current time (timezone-aware); for tests.
        timeout: seconds to wait for the identity service per attempt.
        refresh_logins: returns fresh logins (may be a coroutine function); when given, a
            refusal of the logins asks it once for new ones and retries the call with them.
    """

    def __init__(
        self,
        config: Config,
        *,
        logins: Mapping[str, str] | None = None,
        identity_id: str | None = None,
        on_identity: IdentityCallback | None = None,
        refresh_margin: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] | None = None,
        timeout: float = 10.0,
        refresh_logins: Callable[[], Awaitable[dict[str, str]]] | None = None,
    ) -> None:
        self._config = config
        self._refresh_logins = refresh_logins
        self._logins: dict[str, str] = dict(logins or {})
        self._identity_id = identity_id
        self._on_identity = on_identity
        self._margin = refresh_margin
        self._clock = clock or (lambda: datetime.now(UTC))
        self._timeout = timeout
        self._client: Any = None
        self._credentials: Credentials | None = None
        self._expiration: datetime | None = None
        self._logins_changed = False
        self._lock = asyncio.Lock()

    @property
    def identity_id(self) -> str | None:
        """The identity id, if known yet (see `get_identity_id`)."""
        return self._identity_id

    @property
    def logins(self) -> dict[str, str]:
        """A copy of the current logins (empty for a guest)."""
        return dict(self._logins)

    @property
    def expiration(self) -> datetime | None:
        """When the current credentials expire (None before the first fetch)."""
        return self._expiration

    def set_logins(self, logins: Mapping[str, str], *, identity_id: str | None = None) -> None:
        """Switch to other logins (log in, or out with ``{}``); credentials are fetched anew.

        The next fetch asks for credentials for the current identity with the new logins,
        which lets the server link the login to this identity or name the identity it
        belongs to (the new id then reaches ``on_identity``). Pass ``identity_id`` when the
        login's identity is already known (e.g. returned with a developer token).
        """
        self._logins = dict(logins)
        self._credentials = None
        self._expiration = None
        self._logins_changed = True
        if identity_id is not None:
            self._identity_id = identity_id

    def invalidate_credentials(self) -> None:
        """Drop the current credentials; the next `credentials` call fetches new ones."""
        self._credentials = None
        self._expiration = None

    def forget_identity(self) -> None:
        """Drop the identity id and credentials; the next call obtains a new identity."""
        self._identity_id = None
        self._credentials = None
        self._expiration = None

    async def get_identity_id(self) -> str:
        """The identity id, asking the server (``GetId`` with the logins) only once.

        Raises:
            NotAuthorizedError: the pool refused the logins or guests are switched off.
            OfflineError: the identity service is unreachable.
            ServerError: the identity service failed.
        """
        async with self._lock:
            return await self._ensure_identity_id()

    async def credentials(self) -> Credentials:
        """Temporary credentials for the identity, renewed ``refresh_margin`` before expiry.

        Each returned `Credentials` is a frozen set: call again before signing to get
        renewed ones (the call is cheap while the current set is fresh).

        Raises:
            IdentityNotFoundError: the server does not know the identity id.
            NotAuthorizedError: the logins were refused; log in again.
            OfflineError: the identity service is unreachable.
            ServerError: the identity service failed.
        """
        async with self._lock:
            if self._credentials is not None and not self._needs_refresh():
                return self._credentials
            await self._fetch_credentials()
            assert self._credentials is not None
            return self._credentials

    def _needs_refresh(self) -> bool:
        return self._expiration is None or self._clock() >= self._expiration - self._margin

    async def _ensure_identity_id(self) -> str:
        if self._identity_id is None:
            response = await self._call("GetId", self._get_id_params())
            await self._adopt_identity(_field(response, "IdentityId"))
        assert self._identity_id is not None
        return self._identity_id

    def _get_id_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"IdentityPoolId": self._config.identity_pool_id}
        if self._logins:
            params["Logins"] = dict(self._logins)
        return params

    async def _fetch_credentials(self) -> None:
        identity_id = await self._ensure_identity_id()
        try:
            response = await self._call("GetCredentialsForIdentity", self._creds_params())
        except NotAuthorizedError:
            if not (self._logins_changed and self._logins):
                raise
            # The logins belong to another identity than the cached one: ask which.
            response = await self._call("GetId", self._get_id_params())
            if _field(response, "IdentityId") == identity_id:
                raise
            await self._adopt_identity(_field(response, "IdentityId"))
            response = await self._call("GetCredentialsForIdentity", self._creds_params())
        self._logins_changed = False
        returned_id = response.get("IdentityId")
        if isinstance(returned_id, str) and returned_id:
            await self._adopt_identity(returned_id)
        creds = response.get("Credentials")
        if not isinstance(creds, dict):
            raise ServerError(
                "the identity service answered GetCredentialsForIdentity without Credentials"
            )
        expiration = creds.get("Expiration")
        if not isinstance(expiration, datetime):
            raise ServerError("the identity service sent credentials without an Expiration time")
        self._credentials = Credentials(
            _field(creds, "AccessKeyId"), _field(creds, "SecretKey"), creds.get("SessionToken")
        )
        self._expiration = expiration if expiration.tzinfo else expiration.replace(tzinfo=UTC)

    def _creds_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"IdentityId": self._identity_id}
        if self._logins:
            params["Logins"] = dict(self._logins)
        return params

    async def _adopt_identity(self, identity_id: str) -> None:
        if identity_id == self._identity_id:
            return
        self._identity_id = identity_id
        if self._on_identity is not None:
            await maybe_await(self._on_identity(identity_id))

    async def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._call_once(operation, params)
        except IdentityNotFoundError:
            raise
        except NotAuthorizedError:
            if self._refresh_logins is None or "Logins" not in params:
                raise
            log.info("the identity service refused the logins; asking for fresh ones")
            self._logins = dict(await self._refresh_logins())
            return await self._call_once(operation, {**params, "Logins": dict(self._logins)})

    async def _call_once(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return await asyncio.to_thread(self._call_blocking, operation, params)
        except CogsyncError:
            raise
        except BOTO_ERRORS as exc:
            raise _translate(exc, operation, params.get("IdentityId")) from exc

    def _call_blocking(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if self._client is None:
            self._client = new_client(  # from the process's one session: see _aws_session
                "cognito-identity",
                region_name=self._config.region,
                endpoint_url=self._config.identity_endpoint,
                config=BotoConfig(
                    signature_version=UNSIGNED,
                    connect_timeout=self._timeout,
                    read_timeout=self._timeout,
                    retries={"mode": "standard", "max_attempts": 2},
                ),
            )
        method = getattr(self._client, _METHODS[operation])
        response: dict[str, Any] = method(**params)
        return response


def _field(response: Mapping[str, Any], name: str) -> str:
    value = response.get(name)
    if not isinstance(value, str) or not value:
        raise ServerError(f"the identity service answered without {name}")
    return value


def _translate(exc: Exception, operation: str, identity_id: str | None) -> CogsyncError:
    """Turn a botocore failure of ``operation`` into the matching cogsync error."""

    def answered(code: str, message: str, _exc: Exception) -> CogsyncError:
        message = message or code
        if code == "ResourceNotFoundException" and operation == "GetCredentialsForIdentity":
            return IdentityNotFoundError(
                f"the identity service does not know identity {identity_id} ({message}): "
                "forget the cached identity id to obtain a new one, or restore the server's data",
                identity_id=identity_id,
            )
        if code == "ResourceNotFoundException":
            return NotAuthorizedError(
                f"the identity pool was not found ({message}): check identity_pool_id and "
                "identity_endpoint in the cogsync config"
            )
        if code == "NotAuthorizedException":
            return NotAuthorizedError(
                f"the identity service refused {operation} ({message}): log in again with "
                "fresh logins, or enable guest access on the identity pool"
            )
        if code == "InvalidParameterException":
            return ConfigError(
                f"the identity service rejected the {operation} parameters ({message}): check "
                "identity_pool_id and the logins' provider names"
            )
        return ServerError(
            f"the identity service failed {operation} ({code}: {message}); retry later"
        )

    return translate_boto_error(
        exc,
        answered=answered,
        unreachable=lambda exc: OfflineError(
            f"cannot reach the identity service ({operation}): {exc}; local data is intact, "
            "retry when the network is back"
        ),
        bad_parameters=lambda exc: ConfigError(
            f"the identity service rejected the {operation} parameters: {exc}; check "
            "identity_pool_id in the cogsync config and the logins"
        ),
        failed=lambda exc: ServerError(f"{operation} failed: {exc}"),
    )
