"""SigV4 verification: the pure checks, and the AppSync-style rejections over HTTP."""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from gql import gql
from gql.transport.exceptions import TransportQueryError
from server_wire import SERVER_INFO, Clock, http_client, new_identity

from cogsync.server.runner import EmbeddedServer
from cogsync.server.sigv4 import (
    SignatureRejected,
    SignedRequest,
    SigningSecret,
    parse_authorization,
    verify_signature,
)

KEY = Credentials("ASIAEXAMPLEKEY000001", "s" * 40, "the-session-token")
SECRET = SigningSecret(
    KEY.access_key, KEY.secret_key, hashlib.sha256(KEY.token.encode()).hexdigest(), None
)
BODY = b'{"query":"{ serverInfo { protocolVersion } }"}'


def signed(creds: Credentials = KEY, body: bytes = BODY, service: str = "appsync") -> SignedRequest:
    request = AWSRequest(
        method="POST",
        url="https://127.0.0.1:8080/graphql",
        headers={"content-type": "application/json"},
        data=body,
    )
    SigV4Auth(creds, service, "eu-west-1").add_auth(request)
    headers = {**dict(request.headers.items()), "Host": "127.0.0.1:8080"}
    return SignedRequest("POST", "/graphql", "", headers, body)


def check(request: SignedRequest, secret: SigningSecret = SECRET, now: float | None = None) -> None:
    parsed = parse_authorization(request.headers.get("Authorization"))
    verify_signature(request, parsed, secret, service="appsync", now=now or time.time())


def rejection(call: Callable[[], object]) -> SignatureRejected:
    with pytest.raises(SignatureRejected) as exc:
        call()
    return exc.value


def test_a_botocore_signature_verifies() -> None:
    check(signed())
    assert parse_authorization(signed().headers["Authorization"]).region == "eu-west-1"


def test_tampering_and_wrong_keys_are_rejected() -> None:
    good = signed()
    other_body = SignedRequest("POST", "/graphql", "", good.headers, b'{"query":"{ x }"}')
    other_header = SignedRequest(
        "POST", "/graphql", "", {**good.headers, "content-type": "text/plain"}, BODY
    )
    other_path = SignedRequest("POST", "/graphql/connect", "", good.headers, BODY)
    wrong_secret = signed(Credentials(KEY.access_key, "t" * 40, KEY.token))
    for request in (other_body, other_header, other_path, wrong_secret):
        assert rejection(lambda r=request: check(r)).error_type == "InvalidSignatureException"


def test_token_expiry_skew_and_service_are_checked() -> None:
    good = signed()
    wrong_token = signed(Credentials(KEY.access_key, KEY.secret_key, "another-token"))
    assert rejection(lambda: check(wrong_token)).error_type == "UnauthorizedException"
    no_token = signed(Credentials(KEY.access_key, KEY.secret_key))
    assert rejection(lambda: check(no_token)).error_type == "UnauthorizedException"
    expired = SigningSecret(SECRET.access_key_id, KEY.secret_key, SECRET.token_sha256, 1.0)
    error = rejection(lambda: check(good, expired))
    assert (error.error_type, error.status) == ("ExpiredTokenException", 401)
    skewed = rejection(lambda: check(good, now=time.time() + 301))
    assert skewed.error_type == "InvalidSignatureException" and "server time" in skewed.message
    check(good, now=time.time() + 290)
    cognito = signed(service="cognito-identity")
    assert rejection(lambda: check(cognito)).error_type == "InvalidSignatureException"


def test_malformed_authorization_headers() -> None:
    assert rejection(lambda: parse_authorization(None)).status == 401
    assert rejection(lambda: parse_authorization("Bearer abc")).status == 401
    for value in (
        "AWS4-HMAC-SHA256 Credential=a/b/c, Signature=x",
        "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=x",
    ):
        assert rejection(lambda v=value: parse_authorization(v)).status == 403


# -- over HTTP ------------------------------------------------------------------------


async def post_signed(
    srv: EmbeddedServer,
    creds: Credentials | None,
    *,
    body: bytes = BODY,
    tamper: Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]] | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST /graphql signed like gql's AppSyncIAMAuthentication, optionally tampered after."""
    host = urlsplit(srv.config.graphql_url).netloc
    headers = {"content-type": "application/json"}
    if creds is not None:
        request = AWSRequest(
            method="POST", url=f"https://{host}/graphql", headers=headers, data=body
        )
        SigV4Auth(creds, "appsync", srv.config.region).add_auth(request)
        headers = dict(request.headers.items())
    if tamper is not None:
        headers, body = tamper(headers, body)
    async with (
        aiohttp.ClientSession() as session,
        session.post(srv.config.graphql_url, data=io.BytesIO(body), headers=headers) as response,
    ):
        return response.status, await response.json()


def error_of(answer: tuple[int, dict[str, Any]]) -> tuple[int, str]:
    status, body = answer
    return status, body["errors"][0]["errorType"]


async def test_http_rejections_are_appsync_shaped(server: EmbeddedServer) -> None:
    _, creds = await new_identity(server)
    status, body = await post_signed(server, creds)
    assert status == 200 and body["data"]["serverInfo"]["protocolVersion"] == 1
    assert error_of(await post_signed(server, None)) == (401, "UnauthorizedException")
    wrong = Credentials(creds.access_key, "x" * 40, creds.token)
    assert error_of(await post_signed(server, wrong)) == (403, "InvalidSignatureException")
    changed_body = await post_signed(server, creds, tamper=lambda h, b: (h, b.replace(b"{ ", b"{")))
    assert error_of(changed_body) == (403, "InvalidSignatureException")
    changed_header = await post_signed(
        server, creds, tamper=lambda h, b: ({**h, "content-type": "application/graphql"}, b)
    )
    assert error_of(changed_header) == (403, "InvalidSignatureException")
    other_token = await post_signed(
        server, creds, tamper=lambda h, b: ({**h, "X-Amz-Security-Token": "forged"}, b)
    )
    assert error_of(other_token) == (401, "UnauthorizedException")
    unknown = Credentials("ASIAUNKNOWNKEY000000", creds.secret_key, creds.token)
    assert error_of(await post_signed(server, unknown)) == (401, "UnauthorizedException")
    admin = server.admin_credentials
    as_admin = Credentials(admin.access_key_id, admin.secret_access_key)
    assert error_of(await post_signed(server, as_admin)) == (403, "UnauthorizedException")
    non_ascii_key = await post_signed(
        server,
        creds,
        tamper=lambda h, b: (
            {**h, "Authorization": h["Authorization"].replace("Credential=", "Credential=\u00c4")},
            b,
        ),
    )
    assert error_of(non_ascii_key) == (401, "UnauthorizedException")


async def test_expired_credentials_and_clock_skew(server: EmbeddedServer, clock: Clock) -> None:
    clock.offset = -3601  # credentials issued "an hour ago" are expired now
    _, old = await new_identity(server)
    clock.offset = 0
    assert error_of(await post_signed(server, old)) == (401, "ExpiredTokenException")
    _, creds = await new_identity(server)
    clock.offset = 400
    assert error_of(await post_signed(server, creds)) == (403, "InvalidSignatureException")
    clock.offset = -400
    assert error_of(await post_signed(server, creds)) == (403, "InvalidSignatureException")
    clock.offset = 0
    async with http_client(server, old) as session:
        with pytest.raises(TransportQueryError) as exc:
            await session.execute(gql(SERVER_INFO))
    assert exc.value.errors and exc.value.errors[0]["errorType"] == "ExpiredTokenException"


async def test_bad_requests_and_size_cap(server: EmbeddedServer) -> None:
    _, creds = await new_identity(server)
    for body in (b"{not json", b"[]", json.dumps({"variables": {}}).encode()):
        assert error_of(await post_signed(server, creds, body=body)) == (
            400,
            "BadRequestException",
        )
    huge = b'{"query":"' + b" " * (8 * 1024 * 1024 + 10) + b'"}'
    assert error_of(await post_signed(server, creds, body=huge))[0] == 413
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/nowhere") as response,
    ):
        assert response.status == 404
        assert (await response.json())["errors"][0]["errorType"] == "NotFoundException"
