"""Test-only: tells the AppSync simulator's launcher which identity an access key belongs to.

Clients of the simulator get real, distinct temporary credentials from the Cognito Identity
API of an in-process `cogsync serve` (`EmbeddedServer`). The simulator reads only the access
key id of a request, and the launcher (``--identity-resolver URL``) asks this server about
keys it has not seen: ``GET /<access key id>`` answers ``{"identityId": ...}`` for a key the
`IdentityDatabase` issued and has not expired, else 404. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import unquote

from cogsync.server.credentials import IdentityDatabase


class IdentityResolver:
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
                body = json.dumps({"identityId": record.identity_id}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read `asked` instead."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base URL the launcher's ``--identity-resolver`` takes."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> IdentityResolver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
