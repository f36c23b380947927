"""The identity database of `cogsync serve`: identities, linked logins, issued credentials.

One SQLite file (``DIR/identity.db``), written only by `IdentityDatabase` and built by the
named migrations of `cogsync.server.migrations`, holds:

- ``meta``: the identity pool id, the server master secret, the token signing key and the
  admin access key id, all created on first start and kept across restarts;
- ``identities`` and ``logins`` (provider, subject) -> identity id;
- ``credentials``: temporary access keys bound to an identity, with their expiry and the
  SHA-256 of their session token. Secret keys are never stored: each is derived from the
  master secret and the access key id, so a copy of the table alone signs nothing.

Revoking an identity's keys notifies the `IdentityDatabase.on_revoke` listeners (the
real-time endpoint ends that identity's subscriptions at once).

The class is synchronous and thread-safe; the aiohttp handlers call it through
`asyncio.to_thread` so SQLite never blocks the event loop.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
import sqlite3
import string
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cogsync.exceptions import ConfigError, UsageError
from cogsync.server.migrations import IDENTITY_MIGRATIONS, migrate
from cogsync.server.sigv4 import (
    SignatureRejected,
    SignedRequest,
    SigningSecret,
    constant_time_equal,
    parse_authorization,
    verify_signature,
)

__all__ = [
    "AdminCredentials",
    "IdentityDatabase",
    "IdentityRecord",
    "IssuedCredentials",
    "KeyRecord",
    "LoginConflictError",
]

_KEY_ALPHABET = string.ascii_uppercase + string.digits
_PURGE_AFTER = 86_400.0  # expired keys are forgotten a day after expiry
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AdminCredentials:
    """The long-lived admin key of a server (``DIR/admin.json``); no session token."""

    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    """Temporary credentials as GetCredentialsForIdentity returns them."""

    identity_id: str
    access_key_id: str
    secret_access_key: str
    session_token: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What the server knows about an access key: its secret and whom it belongs to.

    ``identity_id`` is None for the admin key.
    """

    secret: SigningSecret
    identity_id: str | None

    @property
    def is_admin(self) -> bool:
        """True for the server's admin key."""
        return self.identity_id is None


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """An identity with the login providers linked to it (epoch-second dates)."""

    identity_id: str
    logins: tuple[str, ...]
    created: float
    modified: float


class LoginConflictError(UsageError):
    """A login to link is already linked to another identity; nothing was linked."""


def _random_key(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))


class IdentityDatabase:
    """Identities, logins and credentials of one server, in one SQLite file.

    Args:
        path: the SQLite file (created with its parent directory if missing).
        region: the region used for a new pool id and identity ids (kept from the first
            start afterwards).
    """

    def __init__(self, path: str | Path, *, region: str = "us-east-1") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._revocation_listeners: list[Callable[[str], None]] = []
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            migrate(self._db, IDENTITY_MIGRATIONS, f"identity database {self.path}")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot open identity database {self.path}: {exc}") from exc
        self.pool_id = self._meta("pool_id", lambda: f"{region}:{uuid.uuid4()}")
        self.region = self.pool_id.split(":", 1)[0]
        self._master = bytes.fromhex(self._meta("master_secret", lambda: secrets.token_hex(32)))
        self._admin_key = self._meta("admin_access_key_id", lambda: _random_key("AKIA"))
        self._signing_key_pem = self._meta("signing_key_pem", _new_signing_key_pem)

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()

    def _meta(self, key: str, make: Callable[[], str]) -> str:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return str(row[0])
            value = make()
            self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
            return value

    def _derive_secret(self, access_key_id: str) -> str:
        digest = hmac.new(self._master, access_key_id.encode("ascii"), hashlib.sha256).digest()
        return base64.b64encode(digest).decode("ascii")[:40]

    @property
    def admin_credentials(self) -> AdminCredentials:
        """The admin access key and its secret (stable across restarts)."""
        return AdminCredentials(self._admin_key, self._derive_secret(self._admin_key))

    @property
    def signing_key_pem(self) -> bytes:
        """The PEM RSA private key that signs this server's OpenID tokens."""
        return self._signing_key_pem.encode("ascii")

    def create_identity(self, now: float) -> str:
        """Create a new identity and return its id (``region:uuid``)."""
        identity_id = f"{self.region}:{uuid.uuid4()}"
        with self._lock:
            self._db.execute(
                "INSERT INTO identities (identity_id, created, modified) VALUES (?, ?, ?)",
                (identity_id, now, now),
            )
        return identity_id

    def ensure_identity(self, identity_id: str, now: float) -> bool:
        """Create an identity with this very id unless it exists (migration); True if created."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO identities (identity_id, created, modified) "
                "VALUES (?, ?, ?)",
                (identity_id, now, now),
            )
        return cursor.rowcount == 1

    def identity(self, identity_id: str) -> IdentityRecord | None:
        """The identity with this id, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT identity_id, created, modified FROM identities WHERE identity_id = ?",
                (identity_id,),
            ).fetchone()
            if row is None:
                return None
            return self._record(row)

    def _record(self, row: tuple[str, float, float]) -> IdentityRecord:
        providers = self._db.execute(
            "SELECT DISTINCT provider FROM logins WHERE identity_id = ? ORDER BY provider",
            (row[0],),
        ).fetchall()
        return IdentityRecord(row[0], tuple(p[0] for p in providers), row[1], row[2])

    def identity_for_login(self, provider: str, subject: str) -> str | None:
        """The identity a login is linked to, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT identity_id FROM logins WHERE provider = ? AND subject = ?",
                (provider, subject),
            ).fetchone()
        return None if row is None else str(row[0])

    def link_login(self, identity_id: str, provider: str, subject: str, now: float) -> None:
        """Link a login to an identity (idempotent)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO logins (provider, subject, identity_id) VALUES (?, ?, ?)",
                (provider, subject, identity_id),
            )
            self._db.execute(
                "UPDATE identities SET modified = ? WHERE identity_id = ?", (now, identity_id)
            )

    def on_revoke(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call ``listener(identity_id)`` after an identity's credentials are revoked.

        It runs in the revoking thread (`revoke_credentials`, `remove_identity`), after the
        keys are gone, and must not block. Returns a function that removes the listener.
        """
        with self._lock:
            self._revocation_listeners.append(listener)

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._revocation_listeners.remove(listener)

        return remove

    def _revoked(self, identity_id: str) -> None:
        with self._lock:
            listeners = list(self._revocation_listeners)
        for listener in listeners:
            try:
                listener(identity_id)
            except Exception:
                _log.exception("a revocation listener failed")

    def revoke_credentials(self, identity_id: str) -> None:
        """Invalidate every credential issued to an identity (it must ask for new ones)."""
        with self._lock:
            self._db.execute("DELETE FROM credentials WHERE identity_id = ?", (identity_id,))
        self._revoked(identity_id)

    def remove_identity(self, identity_id: str) -> None:
        """Forget an identity (after a merge) and revoke its credentials."""
        with self._lock:
            self._db.execute("DELETE FROM credentials WHERE identity_id = ?", (identity_id,))
            self._db.execute("DELETE FROM logins WHERE identity_id = ?", (identity_id,))
            self._db.execute("DELETE FROM identities WHERE identity_id = ?", (identity_id,))
        self._revoked(identity_id)

    def identity_count(self) -> int:
        """How many identities the pool holds."""
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM identities").fetchone()
        return int(row[0])

    def list_identities(
        self, limit: int, after: int = 0
    ) -> tuple[list[IdentityRecord], int | None]:
        """Up to ``limit`` identities after position ``after``, and the next position or None."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, identity_id, created, modified FROM identities WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (after, limit + 1),
            ).fetchall()
            page = [self._record((r[1], r[2], r[3])) for r in rows[:limit]]
        return page, (rows[limit - 1][0] if len(rows) > limit else None)

    def issue_credentials(self, identity_id: str, now: float, lifetime: float) -> IssuedCredentials:
        """Issue temporary credentials for an identity, valid for ``lifetime`` seconds."""
        access_key_id = _random_key("ASIA")
        token = secrets.token_urlsafe(48)  # 384 bits
        expires_at = float(int(now + lifetime))
        with self._lock:
            self._db.execute("DELETE FROM credentials WHERE expires_at < ?", (now - _PURGE_AFTER,))
            self._db.execute(
                "INSERT INTO credentials (access_key_id, identity_id, token_sha256, issued_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?)",
                (
                    access_key_id,
                    identity_id,
                    hashlib.sha256(token.encode("utf-8")).hexdigest(),
                    now,
                    expires_at,
                ),
            )
        return IssuedCredentials(
            identity_id=identity_id,
            access_key_id=access_key_id,
            secret_access_key=self._derive_secret(access_key_id),
            session_token=token,
            expires_at=expires_at,
        )

    def lookup_key(self, access_key_id: str) -> KeyRecord | None:
        """The signing secret and owner of an access key this server issued, or None."""
        if constant_time_equal(access_key_id, self._admin_key):
            admin = self.admin_credentials
            secret = SigningSecret(admin.access_key_id, admin.secret_access_key, None, None)
            return KeyRecord(secret, None)
        with self._lock:
            row = self._db.execute(
                "SELECT identity_id, token_sha256, expires_at FROM credentials "
                "WHERE access_key_id = ?",
                (access_key_id,),
            ).fetchone()
        if row is None:
            return None
        secret = SigningSecret(access_key_id, self._derive_secret(access_key_id), row[1], row[2])
        return KeyRecord(secret, str(row[0]))

    def authenticate(self, request: SignedRequest, *, service: str, now: float) -> KeyRecord:
        """Verify a request's SigV4 signature against the keys this server issued.

        Returns the key's record (whose ``identity_id`` is the caller); raises
        `SignatureRejected` for a missing, unknown, expired or wrong signature.
        """
        headers = {k.lower(): v for k, v in request.headers.items()}
        parsed = parse_authorization(headers.get("authorization"))
        record = self.lookup_key(parsed.access_key_id)
        if record is None:
            raise SignatureRejected(
                "UnauthorizedException",
                "The security token included in the request is invalid: the access key was "
                "not issued by this server",
                401,
            )
        verify_signature(request, parsed, record.secret, service=service, now=now)
        return record

    # -- migration: developer logins carried over from another system ------------------

    def import_logins(
        self, identity_id: str, provider: str, subjects: list[str], now: float
    ) -> int:
        """Link logins of one provider to an identity, creating it with this very id if absent.

        All or nothing, idempotent (links already present are kept); returns how many links
        are new. Raises `LoginConflictError` if a subject is linked to another identity.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                owners = {
                    row[0]
                    for subject in subjects
                    for row in self._db.execute(
                        "SELECT identity_id FROM logins WHERE provider = ? AND subject = ?",
                        (provider, subject),
                    )
                } - {identity_id}
                if owners:
                    raise LoginConflictError(
                        f"a {provider} login of {identity_id} is already linked to identity "
                        f"{sorted(owners)[0]} on this server"
                    )
                self._db.execute(
                    "INSERT OR IGNORE INTO identities (identity_id, created, modified) "
                    "VALUES (?, ?, ?)",
                    (identity_id, now, now),
                )
                added = 0
                for subject in subjects:
                    added += self._db.execute(
                        "INSERT OR IGNORE INTO logins (provider, subject, identity_id) "
                        "VALUES (?, ?, ?)",
                        (provider, subject, identity_id),
                    ).rowcount
                if added:
                    self._db.execute(
                        "UPDATE identities SET modified = ? WHERE identity_id = ?",
                        (now, identity_id),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added

    def login_subjects(self, identity_id: str, provider: str) -> list[str]:
        """The subjects (user ids) of one provider linked to an identity, sorted."""
        with self._lock:
            rows = self._db.execute(
                "SELECT subject FROM logins WHERE identity_id = ? AND provider = ? "
                "ORDER BY subject",
                (identity_id, provider),
            ).fetchall()
        return [str(r[0]) for r in rows]


def _new_signing_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode("ascii")
