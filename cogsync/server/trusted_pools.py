"""Trusted identity pools: OpenID tokens of the old Cognito identity pool as proof of identity.

``cogsync serve --trust-identity-pool POOL_ID`` accepts, under the logins key
``cognito-identity.amazonaws.com``, an OpenID token that Amazon Cognito issued for identity
X of that pool (``GetOpenIdToken``: issuer ``https://cognito-identity.amazonaws.com``,
``aud`` the pool id, ``sub`` X, signed with Cognito Identity's keys) as proof of X, provided X
was migrated to this server. A device still signing in through the old pool thus syncs as
its migrated identity. An authenticated token (``amr`` holding ``authenticated``) also links
the login ``<pool id>`` -> X, after which X needs logins like any authenticated identity.

Nothing else proves an existing id: the signature must verify against the pool's JWKS, the
audience must be a trusted pool, the token must not have expired, and X must exist here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import urllib3

from cogsync.exceptions import ConfigError
from cogsync.server.credentials import IdentityDatabase
from cogsync.server.wire import RequestRefused

__all__ = ["COGNITO_ISSUER", "TrustedPools", "default_jwks_url", "load_trusted_pools"]

COGNITO_ISSUER = "https://cognito-identity.amazonaws.com"
"""The ``iss`` of every OpenID token Cognito Identity issues."""
_ALGORITHMS = ["RS256", "RS384", "RS512"]
_POOL_RE = re.compile(r"[\w-]+:[0-9a-f-]+")


def default_jwks_url(pool_id: str) -> str:
    """Cognito Identity's public keys (``jwks_uri`` of its OpenID configuration).

    One key set serves every region (each region's keys carry their own ``kid``), so the
    URL does not depend on ``pool_id``; it is a parameter so a future issuer split by region
    can be followed without changing callers.
    """
    del pool_id
    return f"{COGNITO_ISSUER}/.well-known/jwks_uri"


def _refused(message: str) -> RequestRefused:
    return RequestRefused("NotAuthorizedException", f"Invalid login token: {message}")


@dataclass(frozen=True, slots=True)
class _Pool:
    pool_id: str
    keys: jwt.PyJWKSet


class TrustedPools:
    """The identity pools whose OpenID tokens prove a migrated identity.

    Args:
        pools: pool id -> the JWKS document (``{"keys": [...]}``) of its issuer.

    Raises:
        ConfigError: a pool id is malformed or a JWKS unusable.
    """

    def __init__(self, pools: Mapping[str, Mapping[str, Any]]) -> None:
        self._pools: dict[str, _Pool] = {}
        for pool_id, jwks in pools.items():
            if not _POOL_RE.fullmatch(pool_id):
                raise ConfigError(f"--trust-identity-pool {pool_id!r} is not REGION:GUID")
            try:
                keys = jwt.PyJWKSet.from_dict(dict(jwks))
            except jwt.PyJWTError as exc:
                raise ConfigError(f"the JWKS of trusted pool {pool_id} is unusable: {exc}") from exc
            self._pools[pool_id] = _Pool(pool_id, keys)

    @property
    def pool_ids(self) -> tuple[str, ...]:
        """The trusted pool ids."""
        return tuple(self._pools)

    def issued_by_trusted_pool(self, token: str) -> bool:
        """True if the (unverified) token names Cognito and a trusted pool as its audience."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return False
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        return claims.get("iss") == COGNITO_ISSUER and any(a in self._pools for a in audiences)

    def resolve(self, token: str, db: IdentityDatabase, *, now: float) -> str:
        """Verify a trusted pool's token and return the migrated identity it proves.

        Raises:
            RequestRefused: ``NotAuthorizedException`` for a bad signature, an expired
                token, or an identity this server does not hold.
        """
        claims = self._verify(token, now)
        identity_id = claims["sub"]
        if db.identity(identity_id) is None:
            raise _refused(
                f"identity {identity_id} of pool {claims['aud']} was not migrated to this server"
            )
        amr = claims.get("amr")
        if isinstance(amr, list) and "authenticated" in amr:
            db.link_login(identity_id, str(claims["aud"]), identity_id, now)
        return str(identity_id)

    def _verify(self, token: str, now: float) -> dict[str, Any]:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            pool = self._pools[unverified["aud"]]
            kid = jwt.get_unverified_header(token).get("kid")
            key = pool.keys[kid] if kid is not None else pool.keys.keys[0]
        except (jwt.PyJWTError, KeyError, IndexError, TypeError) as exc:
            raise _refused("no key of the trusted pool's issuer signed it") from exc
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=_ALGORITHMS,
                issuer=COGNITO_ISSUER,
                audience=pool.pool_id,
                options={"verify_exp": False, "require": ["exp", "iss", "sub", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise _refused(str(exc)) from exc
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= now:
            raise _refused("Token expired: get a new one from the identity pool")
        if not isinstance(claims.get("sub"), str) or not _POOL_RE.fullmatch(claims["sub"]):
            raise _refused("its 'sub' is not an identity id")
        return claims


def _read_jwks(source: str) -> dict[str, Any]:
    try:
        if source.startswith(("https://", "http://")):
            response = urllib3.request("GET", source, timeout=10.0, retries=2)
            if response.status != 200:
                raise ConfigError(f"cannot fetch JWKS {source}: HTTP {response.status}")
            data = json.loads(response.data)
        else:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
    except (OSError, ValueError, urllib3.exceptions.HTTPError) as exc:
        raise ConfigError(f"cannot read JWKS {source}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"JWKS {source} must be a JSON object with a 'keys' list")
    return data


def load_trusted_pools(pool_ids: Sequence[str], jwks_sources: Sequence[str]) -> TrustedPools:
    """Trusted pools with their keys: ``jwks_sources`` (files or URLs) pair with
    ``pool_ids`` in order; without any, each pool uses `default_jwks_url`.

    Raises:
        ConfigError: sources do not pair with pools, or a JWKS cannot be read.
    """
    if jwks_sources and len(jwks_sources) != len(pool_ids):
        raise ConfigError("give one --trusted-pool-jwks per --trust-identity-pool, or none")
    sources = list(jwks_sources) or [default_jwks_url(p) for p in pool_ids]
    return TrustedPools(
        {pool: _read_jwks(source) for pool, source in zip(pool_ids, sources, strict=True)}
    )
