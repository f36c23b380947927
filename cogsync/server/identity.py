"""The Cognito Identity JSON 1.1 API of `cogsync serve` (``POST /``).

It answers boto3's ``cognito-identity`` client pointed at the server with ``endpoint_url``:
GetId, GetCredentialsForIdentity and GetOpenIdToken (unsigned, authorized by logins), and
GetOpenIdTokenForDeveloperIdentity, DescribeIdentity, ListIdentities (SigV4-signed with the
admin key). Refusals (`RequestRefused`) answer AWS-shaped (``{"__type", "message"}``, HTTP
400 unless a signature check says otherwise) so botocore raises ``ClientError`` with the
right code.

Logins accepted:

- ``cognito-identity.amazonaws.com``: an OpenID token this server signed (RS256, key kept in
  the identity database), as returned by GetOpenIdTokenForDeveloperIdentity / GetOpenIdToken,
  of an identity with a linked login, or one a trusted Cognito identity pool issued for a
  migrated identity (`cogsync.server.trusted_pools`). Our tokens carry Cognito's ``amr``
  claim: ``["unauthenticated"]`` for a guest (such a token is never a login),
  ``["authenticated", <provider>...]`` otherwise;
- ``<issuer without https://>``: an OIDC ID token (e.g. a Cognito user pool's) verified
  against the issuer's configured JWKS, or its keys found by OIDC discovery
  (`cogsync.server.oidc_keys`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from cogsync.exceptions import ConfigError, UsageError
from cogsync.server.access import Authenticator
from cogsync.server.access_log import IDENTITY, OPERATION, OUTCOME
from cogsync.server.connections import read_body
from cogsync.server.credentials import IdentityDatabase
from cogsync.server.oidc_keys import DiscoveredKeys, IssuerKeys, KeyUnavailable, StaticKeys
from cogsync.server.trusted_pools import TrustedPools
from cogsync.server.wire import AWS_JSON, RequestRefused, aws_error_response, decode_json

__all__ = ["COGNITO_PROVIDER", "IdentityApi", "IdentitySettings", "load_jwks"]

COGNITO_PROVIDER = "cognito-identity.amazonaws.com"
"""The logins key of a token signed by this server (as with Amazon Cognito)."""

_log = logging.getLogger(__name__)

_TARGET_PREFIX = "AWSCognitoIdentityService."
_IDENTITY_ID_RE = re.compile(r"[\w-]+:[0-9a-f-]+")
_MAX_LOGINS = 10


@dataclass(frozen=True, slots=True)
class IdentitySettings:
    """How the identity API authenticates users.

    Attributes:
        allow_guests: issue identities and credentials without logins; when False, no
            identity without a linked login gets credentials or tokens.
        developer_provider: the developer provider name accepted by
            GetOpenIdTokenForDeveloperIdentity.
        oidc_issuers: issuer URL (``https://...``) -> its JWKS document, or None to find
            its keys by OIDC discovery (refetched on an unknown key id).
        oidc_refresh_interval: least seconds between two key-set refetches of a discovered
            issuer caused by unknown key ids.
        oidc_client_ids: the app client ids an ID token's ``aud`` must name (as an
            identity pool's provider client ids); empty accepts any audience.
        credential_lifetime: seconds temporary credentials stay valid.
        token_lifetime: default seconds an OpenID token stays valid.
        on_merge: called ``(guest_identity_id, identity_id)`` (in a worker thread) when a
            guest presents logins of another identity: the guest's data must move over.
        trusted_pools: identity pools whose OpenID tokens (under
            ``cognito-identity.amazonaws.com``) prove a migrated identity.
    """

    allow_guests: bool = True
    developer_provider: str = "login.cogsync.dev"
    oidc_issuers: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    oidc_refresh_interval: float = 60.0
    oidc_client_ids: tuple[str, ...] = ()
    credential_lifetime: float = 3600.0
    token_lifetime: float = 900.0
    on_merge: Callable[[str, str], object] | None = None
    trusted_pools: TrustedPools | None = None


def load_jwks(path: str) -> dict[str, Any]:
    """Read a JWKS file (``{"keys": [...]}``), raising `ConfigError` if unusable."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        jwt.PyJWKSet.from_dict(data)
    except (OSError, ValueError, jwt.PyJWTError) as exc:
        raise ConfigError(f"cannot use JWKS file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"JWKS file {path} must hold a JSON object with a 'keys' list")
    return data


def _not_authorized(message: str) -> RequestRefused:
    return RequestRefused("NotAuthorizedException", message)


class IdentityApi:
    """Handles ``POST /`` Cognito Identity requests.

    Args:
        db: the identity database.
        settings: login and lifetime settings.
        clock: returns the current time in epoch seconds.
    """

    def __init__(
        self, db: IdentityDatabase, settings: IdentitySettings, clock: Callable[[], float]
    ) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._authenticator = Authenticator(db, clock)
        key = serialization.load_pem_private_key(db.signing_key_pem, password=None)
        self._private_key = key
        self._public_key = key.public_key()
        self._issuers: dict[str, tuple[str, IssuerKeys]] = {}
        for issuer, jwks in settings.oidc_issuers.items():
            keys: IssuerKeys
            if jwks is None:
                keys = DiscoveredKeys(issuer, refresh_interval=settings.oidc_refresh_interval)
            else:
                keys = StaticKeys(issuer, dict(jwks))
            provider = issuer.split("://", 1)[-1].rstrip("/")
            self._issuers[provider] = (issuer, keys)
        self._operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "GetId": self._get_id,
            "GetCredentialsForIdentity": self._get_credentials,
            "GetOpenIdToken": self._get_open_id_token,
        }
        self._admin_operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "GetOpenIdTokenForDeveloperIdentity": self._get_token_for_developer,
            "DescribeIdentity": self._describe_identity,
            "ListIdentities": self._list_identities,
        }

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one Cognito Identity request."""
        try:
            body = await read_body(request)
            target = request.headers.get("X-Amz-Target", "")
            name = target.removeprefix(_TARGET_PREFIX)
            if not target.startswith(_TARGET_PREFIX) or not name:
                raise RequestRefused(
                    "UnknownOperationException",
                    f"X-Amz-Target {target[:80]!r} is not an AWSCognitoIdentityService operation",
                )
            known = name in self._admin_operations or name in self._operations
            request[OPERATION] = name if known else "unknown"
            params = _parse_params(body)
            if name in self._admin_operations:
                await self._require_admin(request, body)
                operation = self._admin_operations[name]
            elif name in self._operations:
                operation = self._operations[name]
            else:
                raise RequestRefused(
                    "UnknownOperationException", f"operation {name[:80]!r} is not supported"
                )
            result = await asyncio.to_thread(operation, params)
            identity = result.get("IdentityId", params.get("IdentityId"))
            if isinstance(identity, str):
                request[IDENTITY] = identity
        except RequestRefused as exc:
            # AppSync's UnauthorizedException is NotAuthorizedException in Cognito Identity.
            error_type = exc.error_type.replace("UnauthorizedException", "NotAuthorizedException")
            request[OUTCOME] = error_type
            return aws_error_response(RequestRefused(error_type, exc.message, exc.status))
        return web.json_response(result, content_type=AWS_JSON)

    async def _require_admin(self, request: web.Request, body: bytes) -> None:
        record = await self._authenticator.verify_request(request, body, service="cognito-identity")
        if not record.is_admin:
            raise _not_authorized(
                "this operation needs the server's admin credentials (DIR/admin.json)"
            )

    # -- operations (run in a worker thread) ------------------------------------------

    def _get_id(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_pool(params)
        logins = self._resolve_logins(params)
        now = self._clock()
        if not logins:
            if not self._settings.allow_guests:
                raise _not_authorized("Unauthenticated access is not supported for this pool")
            return {"IdentityId": self._db.create_identity(now)}
        owners = {owner for _, _, owner in logins if owner is not None}
        if len(owners) > 1:
            raise RequestRefused(
                "ResourceConflictException",
                "these logins belong to different identities; log in with one of them",
            )
        identity_id = owners.pop() if owners else self._db.create_identity(now)
        self._link(identity_id, logins, now)
        return {"IdentityId": identity_id}

    def _get_credentials(self, params: dict[str, Any]) -> dict[str, Any]:
        identity_id = self._authorize_identity(params)
        creds = self._db.issue_credentials(
            identity_id, self._clock(), self._settings.credential_lifetime
        )
        return {
            "IdentityId": identity_id,
            "Credentials": {
                "AccessKeyId": creds.access_key_id,
                "SecretKey": creds.secret_access_key,
                "SessionToken": creds.session_token,
                "Expiration": creds.expires_at,
            },
        }

    def _get_open_id_token(self, params: dict[str, Any]) -> dict[str, Any]:
        identity_id = self._authorize_identity(params)
        token = self._sign_token(identity_id, self._settings.token_lifetime)
        return {"IdentityId": identity_id, "Token": token}

    def _get_token_for_developer(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_pool(params)
        logins = _string_map(params.get("Logins"), "Logins")
        if not logins:
            raise RequestRefused("InvalidParameterException", "Logins must name the developer user")
        provider = self._settings.developer_provider
        unknown = sorted(set(logins) - {provider})
        if unknown:
            raise RequestRefused(
                "InvalidParameterException",
                f"unknown developer provider {unknown[0]!r}: this server accepts {provider!r}",
            )
        duration = params.get("TokenDuration", self._settings.token_lifetime)
        if not isinstance(duration, int | float) or not 1 <= duration <= 86_400:
            raise RequestRefused(
                "InvalidParameterException", "TokenDuration must be 1-86400 seconds"
            )
        user = logins[provider]
        now = self._clock()
        owner = self._db.identity_for_login(provider, user)
        requested = params.get("IdentityId")
        if requested is not None:
            requested = self._existing_identity(requested)
            if owner is not None and owner != requested:
                raise RequestRefused(
                    "ResourceConflictException",
                    f"developer user {user!r} is already linked to another identity",
                )
            owner = requested
        identity_id = owner or self._db.create_identity(now)
        self._db.link_login(identity_id, provider, user, now)
        token = self._sign_token(identity_id, float(duration))
        return {"IdentityId": identity_id, "Token": token}

    def _describe_identity(self, params: dict[str, Any]) -> dict[str, Any]:
        identity_id = self._existing_identity(params.get("IdentityId"))
        record = self._db.identity(identity_id)
        assert record is not None
        return {
            "IdentityId": record.identity_id,
            "Logins": list(record.logins),
            "CreationDate": record.created,
            "LastModifiedDate": record.modified,
        }

    def _list_identities(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_pool(params)
        limit = params.get("MaxResults")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 60:
            raise RequestRefused("InvalidParameterException", "MaxResults must be an integer 1-60")
        after = _decode_page_token(params.get("NextToken"))
        page, next_seq = self._db.list_identities(limit, after)
        result: dict[str, Any] = {
            "IdentityPoolId": self._db.pool_id,
            "Identities": [
                {
                    "IdentityId": r.identity_id,
                    "Logins": list(r.logins),
                    "CreationDate": r.created,
                    "LastModifiedDate": r.modified,
                }
                for r in page
            ],
        }
        if next_seq is not None:
            result["NextToken"] = base64.urlsafe_b64encode(str(next_seq).encode()).decode()
        return result

    # -- authorization ------------------------------------------------------------------

    def _check_pool(self, params: dict[str, Any]) -> None:
        pool = params.get("IdentityPoolId")
        if not isinstance(pool, str) or not pool:
            raise RequestRefused("InvalidParameterException", "IdentityPoolId is required")
        if pool != self._db.pool_id:
            raise RequestRefused(
                "ResourceNotFoundException",
                f"IdentityPool '{pool[:80]}' not found: this server's pool is "
                f"{self._db.pool_id} (see cogsync.json)",
            )

    def _existing_identity(self, identity_id: object) -> str:
        if not isinstance(identity_id, str) or not _IDENTITY_ID_RE.fullmatch(identity_id):
            raise RequestRefused("InvalidParameterException", "IdentityId must be 'region:uuid'")
        if self._db.identity(identity_id) is None:
            raise RequestRefused(
                "ResourceNotFoundException", f"Identity '{identity_id}' not found."
            )
        return identity_id

    def _authorize_identity(self, params: dict[str, Any]) -> str:
        identity_id = self._existing_identity(params.get("IdentityId"))
        logins = self._resolve_logins(params)
        record = self._db.identity(identity_id)
        assert record is not None
        if not logins:
            if record.logins:
                raise _not_authorized(
                    f"Access to Identity '{identity_id}' is forbidden: it is authenticated, "
                    "pass its logins"
                )
            if not self._settings.allow_guests:
                raise _not_authorized("Unauthenticated access is not supported for this pool")
            return identity_id
        owners = {owner for _, _, owner in logins if owner is not None} - {identity_id}
        if owners:
            if record.logins or len(owners) > 1:
                raise _not_authorized(
                    "these logins belong to another identity: call GetId with them"
                )
            target = owners.pop()
            # The guest's credentials die first, so no push of its can land mid-merge.
            self._db.revoke_credentials(identity_id)
            if self._settings.on_merge is not None:
                try:
                    self._settings.on_merge(identity_id, target)
                except UsageError as exc:
                    raise RequestRefused("InvalidParameterException", str(exc)) from exc
            self._db.remove_identity(identity_id)
            identity_id = target
        self._link(identity_id, logins, self._clock())
        if not self._settings.allow_guests and not self._linked_providers(identity_id):
            raise _not_authorized("Unauthenticated access is not supported for this pool")
        return identity_id

    def _linked_providers(self, identity_id: str) -> tuple[str, ...]:
        record = self._db.identity(identity_id)
        return () if record is None else record.logins

    def _link(
        self, identity_id: str, logins: list[tuple[str, str, str | None]], now: float
    ) -> None:
        for provider, subject, owner in logins:
            if owner is None:
                self._db.link_login(identity_id, provider, subject, now)

    def _resolve_logins(self, params: dict[str, Any]) -> list[tuple[str, str, str | None]]:
        """Verify each login token: (provider, subject, identity it is linked to or None)."""
        logins = _string_map(params.get("Logins"), "Logins")
        resolved: list[tuple[str, str, str | None]] = []
        for provider, token in sorted(logins.items()):
            if provider == COGNITO_PROVIDER:
                identity_id = self._verify_own_token(token)
                resolved.append((provider, identity_id, identity_id))
            elif provider in self._issuers:
                subject = self._verify_oidc_token(provider, token)
                resolved.append((provider, subject, self._db.identity_for_login(provider, subject)))
            else:
                raise _not_authorized(
                    f"Invalid login token: login provider {provider[:80]!r} is not configured "
                    "for this identity pool"
                )
        return resolved

    def _sign_token(self, identity_id: str, lifetime: float) -> str:
        """An OpenID token for the identity; ``amr`` says how it authenticated, as Cognito's:
        ``["unauthenticated"]`` for a guest, ``["authenticated", <linked providers>...]``."""
        providers = self._linked_providers(identity_id)
        amr = ["authenticated", *providers] if providers else ["unauthenticated"]
        now = int(self._clock())
        claims = {
            "iss": f"https://{COGNITO_PROVIDER}",
            "sub": identity_id,
            "aud": self._db.pool_id,
            "iat": now,
            "exp": now + int(lifetime),
            "amr": amr,
        }
        return jwt.encode(claims, self._private_key, algorithm="RS256")  # type: ignore[arg-type]

    def _verify_own_token(self, token: str) -> str:
        trusted = self._settings.trusted_pools
        if trusted is not None and trusted.issued_by_trusted_pool(token):
            return trusted.resolve(token, self._db, now=self._clock())
        claims = self._decode(
            token, self._public_key, issuer=f"https://{COGNITO_PROVIDER}", audience=self._db.pool_id
        )
        identity_id = claims.get("sub")
        if not isinstance(identity_id, str) or self._db.identity(identity_id) is None:
            raise _not_authorized("Invalid login token: its identity no longer exists")
        amr = claims.get("amr")
        # A guest's own token is no login: it proves nothing but the identity id. Tokens
        # older servers gave guests say "authenticated", so the linked logins decide too.
        if not (isinstance(amr, list) and "authenticated" in amr) or not self._linked_providers(
            identity_id
        ):
            raise _not_authorized(
                "Invalid login token: it belongs to an unauthenticated identity; log in with "
                "a provider's token"
            )
        return identity_id

    def _verify_oidc_token(self, provider: str, token: str) -> str:
        issuer, keys = self._issuers[provider]
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = keys.key_for(kid if isinstance(kid, str) else None)
        except KeyUnavailable as exc:
            _log.warning("login with an ID token of %s refused: %s", issuer, exc)
            raise _not_authorized(f"Invalid login token: no key of {issuer} signed it") from exc
        except jwt.PyJWTError as exc:
            raise _not_authorized(f"Invalid login token: no key of {issuer} signed it") from exc
        audience = list(self._settings.oidc_client_ids) or None
        claims = self._decode(token, key.key, issuer=issuer, audience=audience)
        if claims.get("token_use", "id") != "id":
            raise _not_authorized("Invalid login token: pass the ID token, not an access token")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise _not_authorized("Invalid login token: it has no 'sub' claim")
        return subject

    def _decode(
        self, token: str, key: Any, *, issuer: str, audience: str | list[str] | None
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=issuer,
                audience=audience,
                options={
                    "verify_aud": audience is not None,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["exp", "iss", "sub"],
                },
            )
        except jwt.PyJWTError as exc:
            raise _not_authorized(f"Invalid login token: {exc}") from exc
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= self._clock():
            raise _not_authorized("Invalid login token. Token expired: log in again")
        return claims


def _parse_params(body: bytes) -> dict[str, Any]:
    params = decode_json(
        body or b"{}", error_type="SerializationException", what="the request body"
    )
    if not isinstance(params, dict):
        raise RequestRefused("SerializationException", "the request body must be a JSON object")
    return params


def _string_map(value: object, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if (
        not isinstance(value, dict)
        or len(value) > _MAX_LOGINS
        or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in value.items())
    ):
        raise RequestRefused(
            "InvalidParameterException",
            f"{name} must map up to {_MAX_LOGINS} provider names to non-empty strings",
        )
    return dict(value)


def _decode_page_token(token: object) -> int:
    if token is None:
        return 0
    try:
        if isinstance(token, str):
            return int(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, binascii.Error) as exc:
        raise RequestRefused("InvalidParameterException", "NextToken is not valid") from exc
    raise RequestRefused("InvalidParameterException", "NextToken must be a string")
