"""`IdentityRegistry`: the real-time connections each identity holds, within its caps.

The real-time endpoint admits each connection once its handshake named the identity, and
releases it when it closes. The registry refuses a connection or a subscription past the
identity's caps (`RealtimeLimits`), and, listening to the identity database, has a revoked
identity's connections end their subscriptions and close at once (from whichever thread
revoked the keys).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from cogsync.server.credentials import IdentityDatabase
from cogsync.server.realtime_limits import RealtimeLimits
from cogsync.server.wire import RequestRefused

__all__ = ["Held", "IdentityRegistry"]


class Held(Protocol):
    """What the registry needs of a connection."""

    @property
    def subscription_count(self) -> int:
        """Subscriptions open or starting on the connection."""
        ...

    def revoke(self) -> None:
        """The identity's credentials were revoked: end the subscriptions and close."""
        ...


ConnectionT = TypeVar("ConnectionT", bound=Held)


class IdentityRegistry(Generic[ConnectionT]):
    """Connections per identity, within ``limits``.

    Args:
        limits: the per-identity caps.
    """

    def __init__(self, limits: RealtimeLimits) -> None:
        self.limits = limits
        self._held: dict[str, set[ConnectionT]] = {}
        self._stop_listening: Callable[[], None] | None = None

    def listen(self, db: IdentityDatabase) -> None:
        """Revoke connections when ``db`` revokes keys (call from the serving event loop)."""
        loop = asyncio.get_running_loop()

        def revoked(identity_id: str) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to end
                loop.call_soon_threadsafe(self.revoke, identity_id)

        self.stop_listening()
        self._stop_listening = db.on_revoke(revoked)

    def stop_listening(self) -> None:
        """Stop following revocations (server shutdown)."""
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None

    def revoke(self, identity_id: str) -> None:
        """End the subscriptions and connections of an identity whose keys were revoked."""
        for connection in list(self._held.get(identity_id, ())):
            connection.revoke()

    def connections(self, identity_id: str) -> int:
        """How many admitted connections ``identity_id`` holds."""
        return len(self._held.get(identity_id, ()))

    def subscriptions(self, identity_id: str) -> int:
        """How many subscriptions ``identity_id`` holds (or is starting) on all connections."""
        return sum(c.subscription_count for c in self._held.get(identity_id, ()))

    def admit(self, connection: ConnectionT, identity_id: str) -> None:
        """Count a handshaken connection against its identity's cap, or refuse it."""
        peers = self._held.setdefault(identity_id, set())
        cap = self.limits.connections_per_identity
        if len(peers) >= cap:
            raise RequestRefused(
                "LimitExceededError",
                f"this identity holds {cap} real-time connections, the most allowed: "
                "close one first",
                429,
            )
        peers.add(connection)

    def release(self, connection: ConnectionT, identity_id: str) -> None:
        """Forget a closed connection."""
        peers = self._held.get(identity_id)
        if peers is not None:
            peers.discard(connection)
            if not peers:
                del self._held[identity_id]

    def check_subscription(self, connection: ConnectionT, identity_id: str) -> None:
        """Refuse one more subscription past the connection's or the identity's cap."""
        limits = self.limits
        if connection.subscription_count >= limits.subscriptions_per_connection:
            raise RequestRefused(
                "MaxSubscriptionsReachedError",
                f"a connection holds at most {limits.subscriptions_per_connection} subscriptions",
            )
        if self.subscriptions(identity_id) >= limits.subscriptions_per_identity:
            raise RequestRefused(
                "MaxSubscriptionsReachedError",
                f"an identity holds at most {limits.subscriptions_per_identity} "
                "subscriptions over all its connections",
            )
