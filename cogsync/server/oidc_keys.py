"""Signing keys of OIDC issuers: a JWKS file (offline) or OpenID Connect discovery.

`StaticKeys` holds a JWKS document given at start (``--jwks-file``). `DiscoveredKeys`
(``--oidc-issuer URL`` alone) reads ``URL/.well-known/openid-configuration`` on first use,
checks that it names the same issuer, and fetches its ``jwks_uri`` with PyJWT's
`PyJWKClient`, which caches the key set. A token signed with a key id not in the cache
refetches the key set, at most once per ``refresh_interval`` seconds (so a flood of tokens
with made-up key ids cannot make the server hammer the issuer); an issuer's key rotation
thus needs no restart. Fetches block: callers run them on a worker thread.

Issuers must be ``https://`` URLs, except loopback ones (``http://127.0.0.1...``, for tests
and sidecars) or with ``allow_http`` (``--allow-http-issuer``).
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import jwt

from cogsync.exceptions import ConfigError

__all__ = ["DiscoveredKeys", "IssuerKeys", "KeyUnavailable", "StaticKeys", "check_issuer_url"]

_TIMEOUT = 10.0


class KeyUnavailable(Exception):
    """No key of the issuer can verify the token (unknown kid, or the issuer is down)."""


class IssuerKeys(Protocol):
    """Where the keys of one issuer come from."""

    def key_for(self, kid: str | None) -> jwt.PyJWK:
        """The key with id ``kid`` (the only key when None); `KeyUnavailable` if none."""
        ...


def check_issuer_url(issuer: str, *, allow_http: bool = False) -> None:
    """Refuse (`ConfigError`) an issuer that is not https (http: loopback or ``allow_http``)."""
    parts = urlsplit(issuer)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and (allow_http or _loopback(parts.hostname)):
        return
    raise ConfigError(
        f"--oidc-issuer {issuer!r} must be an https:// URL (http only for loopback issuers "
        "or with --allow-http-issuer)"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StaticKeys:
    """The keys of a JWKS document given at start."""

    def __init__(self, issuer: str, jwks: dict[str, Any]) -> None:
        try:
            self._keyset = jwt.PyJWKSet.from_dict(jwks)
        except jwt.PyJWTError as exc:
            raise ConfigError(f"JWKS for issuer {issuer} is unusable: {exc}") from exc

    def key_for(self, kid: str | None) -> jwt.PyJWK:
        try:
            return self._keyset[kid] if kid is not None else self._keyset.keys[0]
        except (KeyError, IndexError) as exc:
            raise KeyUnavailable(f"no key {kid!r}") from exc


class DiscoveredKeys:
    """The keys of an issuer found by OIDC discovery, refreshed on an unknown key id.

    Args:
        issuer: the issuer URL (as in the tokens' ``iss``).
        refresh_interval: least seconds between two refetches caused by unknown key ids.
        lifespan: seconds a fetched key set is cached before a routine refetch.
        clock: monotonic seconds (tests move it).
    """

    def __init__(
        self,
        issuer: str,
        *,
        refresh_interval: float = 60.0,
        lifespan: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.refresh_interval, self._lifespan, self._clock = refresh_interval, lifespan, clock
        self._client: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()
        self._last_refresh = -float("inf")
        self._last_failure = -float("inf")  # a failed discovery is retried after the interval
        self.fetches = 0  # key-set fetches caused by unknown key ids

    def _discover(self) -> jwt.PyJWKClient:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            with urllib.request.urlopen(url, timeout=_TIMEOUT) as answer:
                document = json.load(answer)
        except (OSError, ValueError) as exc:
            raise KeyUnavailable(f"OIDC discovery at {url} failed: {exc}") from exc
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise KeyUnavailable(f"{url} does not describe issuer {self.issuer}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise KeyUnavailable(f"{url} names no jwks_uri")
        return jwt.PyJWKClient(jwks_uri, lifespan=self._lifespan, timeout=_TIMEOUT)

    def key_for(self, kid: str | None) -> jwt.PyJWK:
        with self._lock:  # one fetch at a time
            try:
                if self._client is None:
                    if self._clock() - self._last_failure < self.refresh_interval:
                        raise KeyUnavailable(f"OIDC discovery of {self.issuer} failed lately")
                    self._last_failure = self._clock()
                    self._client = self._discover()
                    self._last_failure = -float("inf")
                keys = self._client.get_signing_keys()
                match = _match(keys, kid)
                now = self._clock()
                if match is None and now - self._last_refresh >= self.refresh_interval:
                    self._last_refresh = now
                    self.fetches += 1
                    match = _match(self._client.get_signing_keys(refresh=True), kid)
            except jwt.PyJWKClientError as exc:
                raise KeyUnavailable(f"cannot fetch the keys of {self.issuer}: {exc}") from exc
        if match is None:
            raise KeyUnavailable(f"no key {kid!r}")
        return match


def _match(keys: list[jwt.PyJWK], kid: str | None) -> jwt.PyJWK | None:
    if kid is None:
        return keys[0] if len(keys) == 1 else None
    return next((key for key in keys if key.key_id == kid), None)
