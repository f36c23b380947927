"""Who is calling: SigV4 verification of incoming requests for the aiohttp front-ends.

Every signed route (``/graphql``, the real-time handshake and starts, the admin API and
the admin operations of the identity API) checks its caller here, against the keys the
`IdentityDatabase` issued. SQLite work runs in a worker thread so the event loop never
blocks; a refused signature raises `SignatureRejected`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from cogsync.server.credentials import IdentityDatabase, KeyRecord
from cogsync.server.wire import SignedRequest, signed_request

__all__ = ["Authenticator"]


class Authenticator:
    """Verifies request signatures against one identity database.

    Args:
        db: the identity database holding the issued keys.
        clock: epoch seconds, for the signature's clock-skew and expiry checks.
    """

    def __init__(self, db: IdentityDatabase, clock: Callable[[], float]) -> None:
        self.db = db
        self.clock = clock

    async def verify(self, signed: SignedRequest, *, service: str) -> KeyRecord:
        """The key that signed ``signed`` for ``service``; raises `SignatureRejected`."""
        return await asyncio.to_thread(
            self.db.authenticate, signed, service=service, now=self.clock()
        )

    async def verify_request(self, request: web.Request, body: bytes, *, service: str) -> KeyRecord:
        """The key that signed an HTTP request with ``body``; raises `SignatureRejected`."""
        return await self.verify(signed_request(request, body), service=service)
