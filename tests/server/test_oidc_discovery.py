"""``--oidc-issuer URL`` alone: keys by OIDC discovery from a local issuer that rotates them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import rsa
from server_wire import identity_client

from cogsync.exceptions import ConfigError
from cogsync.server.oidc_keys import check_issuer_url
from cogsync.server.runner import EmbeddedServer


class Issuer:
    """An OIDC issuer on 127.0.0.1: discovery document, JWKS, and tokens of its current key."""

    def __init__(self) -> None:
        self.url = ""
        self.jwks_fetches = 0
        self.rotate()

    def rotate(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = f"key-{time.monotonic_ns()}"

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(self, subject: str, *, kid: str | None = None) -> str:
        claims = {"iss": self.url, "sub": subject, "aud": "app", "exp": int(time.time()) + 600}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def routes(self) -> list[web.RouteDef]:
        async def discovery(_request: web.Request) -> web.Response:
            return web.json_response({"issuer": self.url, "jwks_uri": self.url + "/jwks"})

        async def keys(_request: web.Request) -> web.Response:
            self.jwks_fetches += 1
            return web.json_response(self.jwks())

        return [web.get("/.well-known/openid-configuration", discovery), web.get("/jwks", keys)]


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    issuer = Issuer()
    app = web.Application()
    app.add_routes(issuer.routes())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    issuer.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield issuer
    await runner.cleanup()


def _get_id(srv: EmbeddedServer, provider: str, token: str) -> str:
    client = identity_client(srv)
    logins = {provider: token}
    answer = client.get_id(IdentityPoolId=srv.config.identity_pool_id, Logins=logins)
    return str(answer["IdentityId"])


async def test_key_rotation_at_the_issuer_needs_no_restart(issuer: Issuer, tmp_path: Path) -> None:
    provider = issuer.url.removeprefix("http://")
    async with EmbeddedServer(
        tmp_path / "data", oidc_issuers={issuer.url: None}, oidc_client_ids=["app"]
    ) as srv:
        alice = await asyncio.to_thread(_get_id, srv, provider, issuer.token("alice"))
        assert issuer.jwks_fetches == 1
        issuer.rotate()  # the old key is gone from the issuer's JWKS
        again = await asyncio.to_thread(_get_id, srv, provider, issuer.token("alice"))
        assert again == alice and issuer.jwks_fetches == 2
        # unknown key ids right after a refresh are refused without refetching (rate limit)
        for _ in range(3):
            with pytest.raises(ClientError, match="NotAuthorizedException"):
                forged = issuer.token("mallory", kid="made-up")
                await asyncio.to_thread(_get_id, srv, provider, forged)
        assert issuer.jwks_fetches == 2
        bob = await asyncio.to_thread(_get_id, srv, provider, issuer.token("bob"))
        assert bob != alice and issuer.jwks_fetches == 2  # cached


async def test_a_down_issuer_refuses_logins_and_the_server_stays_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nothing answers
    async with EmbeddedServer(tmp_path / "data", oidc_issuers={dead: None}) as srv:
        token = jwt.encode({"iss": dead, "sub": "x", "exp": 2**31}, "k" * 32, algorithm="HS256")
        for _ in range(2):  # the second fails fast: no new discovery within the interval
            with pytest.raises(ClientError, match="NotAuthorizedException"):
                await asyncio.to_thread(_get_id, srv, "127.0.0.1:9", token)
    assert "OIDC discovery at http://127.0.0.1:9" in caplog.text
    assert "failed lately" in caplog.text


@pytest.mark.parametrize(
    ("url", "allow_http", "ok"),
    [
        ("https://issuer.example", False, True),
        ("http://127.0.0.1:8000", False, True),
        ("http://localhost:8000", False, True),
        ("http://[::1]:8000", False, True),
        ("http://issuer.example", False, False),
        ("http://issuer.example", True, True),
        ("ftp://issuer.example", True, False),
    ],
)
def test_issuer_urls(url: str, allow_http: bool, ok: bool) -> None:
    if ok:
        check_issuer_url(url, allow_http=allow_http)
    else:
        with pytest.raises(ConfigError, match="--allow-http-issuer"):
            check_issuer_url(url, allow_http=allow_http)
