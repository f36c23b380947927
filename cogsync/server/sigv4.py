"""SigV4 signature verification for everything `cogsync serve` receives.

The server recomputes each signature with botocore's own canonicalization
(`botocore.auth.SigV4Auth`) on a request rebuilt from the received method, path, query,
signed headers and body, then compares with `hmac.compare_digest`. Nothing here does I/O:
the caller looks up the signing secret for the access key (`parse_authorization` tells it
which) and passes the clock reading in.

Failures raise `SignatureRejected` (a `RequestRefused`), carrying the AppSync / AWS error
type and HTTP status. `SignedRequest` is re-exported from `cogsync.server.wire`.
"""

from __future__ import annotations

import hashlib
import hmac
from calendar import timegm
from collections.abc import Mapping
from dataclasses import dataclass
from time import strptime

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cogsync.server.wire import RequestRefused, SignedRequest

__all__ = [
    "MAX_CLOCK_SKEW",
    "ParsedAuthorization",
    "SignatureRejected",
    "SignedRequest",
    "SigningSecret",
    "parse_authorization",
    "verify_signature",
]

MAX_CLOCK_SKEW = 300.0
"""Seconds a request's ``X-Amz-Date`` may differ from the server clock."""

_ALGORITHM = "AWS4-HMAC-SHA256"
_UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


class SignatureRejected(RequestRefused):
    """A request's signature or credentials were refused (403 unless said otherwise).

    ``error_type`` is ``UnauthorizedException``, ``InvalidSignatureException``,
    ``ExpiredTokenException`` or ``BadRequestException``.
    """

    def __init__(self, error_type: str, message: str, status: int = 403) -> None:
        super().__init__(error_type, message, status)


@dataclass(frozen=True, slots=True)
class ParsedAuthorization:
    """The fields of an ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True, slots=True)
class SigningSecret:
    """What the server knows about an access key it issued.

    Attributes:
        access_key_id: the access key id.
        secret_access_key: the secret used for the HMAC.
        token_sha256: hex SHA-256 of the session token; None for keys without a token.
        expires_at: epoch seconds after which the key is refused; None = never.
    """

    access_key_id: str
    secret_access_key: str
    token_sha256: str | None
    expires_at: float | None


def constant_time_equal(a: str, b: str) -> bool:
    """Compare two strings in constant time; any text (non-ASCII included) is accepted."""
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


def parse_authorization(value: str | None) -> ParsedAuthorization:
    """Parse an ``Authorization`` header value, or raise `SignatureRejected`."""
    if not value:
        raise SignatureRejected(
            "UnauthorizedException",
            "Valid authorization header not provided: sign the request with SigV4 using "
            "credentials from GetCredentialsForIdentity",
            401,
        )
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != _ALGORITHM:
        raise SignatureRejected(
            "UnauthorizedException",
            f"unsupported authorization scheme {algorithm[:40]!r}: use {_ALGORITHM}",
            401,
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, field_value = part.strip().partition("=")
        if sep:
            fields[name.strip()] = field_value.strip()
    try:
        credential = fields["Credential"].split("/")
        signed = fields["SignedHeaders"]
        signature = fields["Signature"]
    except KeyError as exc:
        raise SignatureRejected(
            "InvalidSignatureException",
            f"authorization header lacks {exc.args[0]}: it must carry Credential, "
            "SignedHeaders and Signature",
        ) from exc
    if len(credential) != 5 or credential[4] != "aws4_request" or not all(credential):
        raise SignatureRejected(
            "InvalidSignatureException",
            "malformed Credential: expected <access key>/<date>/<region>/<service>/aws4_request",
        )
    return ParsedAuthorization(
        access_key_id=credential[0],
        date=credential[1],
        region=credential[2],
        service=credential[3],
        signed_headers=tuple(h.strip().lower() for h in signed.split(";") if h.strip()),
        signature=signature,
    )


def _parse_amz_date(value: str | None) -> float:
    if not value:
        raise SignatureRejected(
            "InvalidSignatureException", "the request lacks an X-Amz-Date header", 403
        )
    try:
        return float(timegm(strptime(value, "%Y%m%dT%H%M%SZ")))
    except ValueError as exc:
        raise SignatureRejected(
            "InvalidSignatureException",
            f"X-Amz-Date {value[:40]!r} is not in the form YYYYMMDDTHHMMSSZ",
        ) from exc


def verify_signature(
    request: SignedRequest,
    parsed: ParsedAuthorization,
    secret: SigningSecret,
    *,
    service: str,
    now: float,
    max_skew: float = MAX_CLOCK_SKEW,
) -> None:
    """Check that ``request`` was signed with ``secret`` for ``service``, or raise.

    Checks, in order: the service in the credential scope, the signed headers (host and
    x-amz-date must be among them), the clock skew, the key's expiry, the session token,
    and finally the signature itself.

    Args:
        request: the received request.
        parsed: its parsed ``Authorization`` header (from `parse_authorization`).
        secret: the signing secret the server holds for ``parsed.access_key_id``.
        service: the service the signature must be scoped to (``appsync``,
            ``cognito-identity``).
        now: the server clock, epoch seconds.
        max_skew: the allowed difference between ``X-Amz-Date`` and ``now``, seconds.

    Raises:
        SignatureRejected: with the AWS error type and HTTP status to answer with.
    """
    if parsed.service != service:
        raise SignatureRejected(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: {service!r}",
        )
    headers = {k.lower(): v for k, v in request.headers.items()}
    for required in ("host", "x-amz-date"):
        if required not in parsed.signed_headers:
            raise SignatureRejected(
                "InvalidSignatureException", f"the {required} header must be signed"
            )
    missing = [h for h in parsed.signed_headers if h not in headers]
    if missing:
        raise SignatureRejected(
            "InvalidSignatureException",
            f"signed header(s) {', '.join(missing)} are missing from the request",
        )
    amz_date = headers["x-amz-date"]
    signed_at = _parse_amz_date(amz_date)
    if amz_date[:8] != parsed.date:
        raise SignatureRejected(
            "InvalidSignatureException",
            "the credential scope date does not match X-Amz-Date",
        )
    if abs(now - signed_at) > max_skew:
        raise SignatureRejected(
            "InvalidSignatureException",
            f"Signature expired or not yet valid: X-Amz-Date {amz_date} is more than "
            f"{int(max_skew)} s away from the server time; fix the device clock",
        )
    if secret.expires_at is not None and now >= secret.expires_at:
        raise SignatureRejected(
            "ExpiredTokenException",
            "The security token included in the request is expired: get new credentials "
            "with GetCredentialsForIdentity",
            401,
        )
    _check_token(headers, parsed, secret)
    body_hash = headers.get("x-amz-content-sha256")
    if body_hash is not None and "x-amz-content-sha256" in parsed.signed_headers:
        actual = hashlib.sha256(request.body).hexdigest()
        if body_hash == _UNSIGNED_PAYLOAD or not constant_time_equal(body_hash, actual):
            raise SignatureRejected(
                "InvalidSignatureException", "X-Amz-Content-SHA256 does not match the body"
            )
    expected = _compute_signature(request, headers, parsed, secret)
    if not constant_time_equal(expected, parsed.signature):
        raise SignatureRejected(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided: "
            "check the secret key and sign the exact body and headers that are sent",
        )


def _check_token(
    headers: Mapping[str, str], parsed: ParsedAuthorization, secret: SigningSecret
) -> None:
    token = headers.get("x-amz-security-token")
    if secret.token_sha256 is None:
        if token is not None:
            raise SignatureRejected(
                "UnauthorizedException",
                "The security token included in the request is invalid",
                401,
            )
        return
    if token is None or "x-amz-security-token" not in parsed.signed_headers:
        raise SignatureRejected(
            "UnauthorizedException",
            "these credentials need their session token: send and sign X-Amz-Security-Token",
            401,
        )
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    if not constant_time_equal(digest, secret.token_sha256):
        raise SignatureRejected(
            "UnauthorizedException",
            "The security token included in the request is invalid",
            401,
        )


def _compute_signature(
    request: SignedRequest,
    headers: Mapping[str, str],
    parsed: ParsedAuthorization,
    secret: SigningSecret,
) -> str:
    url = f"https://{headers['host']}{request.path or '/'}"
    if request.query:
        url = f"{url}?{request.query}"
    rebuilt = AWSRequest(
        method=request.method.upper(),
        url=url,
        headers={name: headers[name] for name in parsed.signed_headers},
        data=request.body,
    )
    rebuilt.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(
        Credentials(secret.access_key_id, secret.secret_access_key),
        parsed.service,
        parsed.region,
    )
    canonical = signer.canonical_request(rebuilt)
    string_to_sign = signer.string_to_sign(rebuilt, canonical)
    signature: str = signer.signature(string_to_sign, rebuilt)
    return signature
