"""Test-only: tells the AppSync simulator's launcher which identity an access key belongs to.

Clients of the simulator get real, distinct temporary credentials from the Cognito Identity
API of an in-process `cogsync serve` (`EmbeddedServer`). The simulator reads only the access
key id of a request, and the launcher (``--identity-resolver URL``) asks this server about
keys it has not seen: ``GET /<access key id>`` answers ``{"identityId": ...}`` for a key the
`IdentityDatabase` issued and has not expired, else 404. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote

from cogsync.server.credentials import IdentityDatabase
from tests.aws.local_http import LocalHttpServer, send_json


class IdentityResolver(LocalHttpServer):
    """An HTTP server on 127.0.0.1 (port 0) answering access key id -> identity id.

    Args:
        identities: the identity database that issued the keys (thread-safe).
    """

    def __init__(self, identities: IdentityDatabase) -> None:
        self.asked: list[str] = []
        resolver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                access_key = unquote(self.path.strip("/"))
                resolver.asked.append(access_key)
                record = identities.lookup_key(access_key)
                expires = record.secret.expires_at if record is not None else None
                if record is None or record.is_admin or (expires or 0) < time.time():
                    self.send_error(404, "no identity has this access key")
                    return
                send_json(self, {"identityId": record.identity_id})

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read `asked` instead."""

        super().__init__(Handler)
