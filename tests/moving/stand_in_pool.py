"""A stand-in for the old Cognito identity pool's token issuer: its own RSA key and JWKS file,
and GetOpenIdToken-shaped tokens (issuer cognito-identity.amazonaws.com, aud the pool)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from cogsync.server.trusted_pools import COGNITO_ISSUER

OLD_POOL = "us-east-1:0ff1ce00-0000-4000-8000-000000000042"
KID = "us-east-11"


class StandInPool:
    """Issues OpenID tokens for identities of ``pool_id`` with its own key."""

    def __init__(self, pool_id: str = OLD_POOL) -> None:
        self.pool_id = pool_id
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks_file(self, path: Path) -> Path:
        """Write the issuer's JWKS (``{"keys": [...]}``) to ``path``."""
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        path.write_text(json.dumps({"keys": [{**public, "kid": KID, "alg": "RS512"}]}))
        return path

    def token(
        self,
        identity_id: str,
        *,
        audience: str | None = None,
        lifetime: float = 600,
        authenticated: bool = True,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        """What GetOpenIdToken of the old pool returns for ``identity_id``."""
        now = int(time.time())
        amr = ["authenticated", "graph.facebook.com"] if authenticated else ["unauthenticated"]
        claims = {
            "iss": COGNITO_ISSUER,
            "sub": identity_id,
            "aud": audience or self.pool_id,
            "amr": amr,
            "iat": now,
            "exp": now + int(lifetime),
        }
        signer = key or self.key
        return jwt.encode(claims, signer, algorithm="RS512", headers={"kid": KID})  # type: ignore[arg-type]
