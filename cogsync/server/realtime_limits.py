"""`RealtimeLimits`: how long and how much the real-time endpoint of `cogsync serve` serves.

Set them with ``EmbeddedServer(realtime=RealtimeLimits(...))`` or the ``cogsync serve
--realtime-*`` settings (`cogsync.server.settings`). Defaults:

======================================  =========  =========================================
setting (flag)                          default    why
======================================  =========  =========================================
``max_lifetime``                        86400 s    AppSync closes a connection after 24 h
(``--realtime-max-lifetime``)
``init_timeout``                        10 s       a socket that never sends
(``--realtime-init-timeout``)                      ``connection_init`` is closed (code 4408)
``connections_per_identity``            20         a cogsync device opens one connection
(``--realtime-connections-per-identity``)
``subscriptions_per_identity``          100        ... holding one subscription
(``--realtime-subscriptions-per-identity``)
``subscriptions_per_connection``        100        AppSync's default quota
(``--realtime-subscriptions-per-connection``)
``check_interval``                      1 s        how often each connection checks its
(``--realtime-check-interval``)                    deadlines (lifetime, init, credentials)
======================================  =========  =========================================

The per-identity caps are far above what a legitimate client uses and bound the memory one
identity can hold on the server; the excess is refused with an AppSync-shaped error
(``LimitExceededError`` / ``MaxSubscriptionsReachedError``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from cogsync.exceptions import ConfigError

__all__ = ["REALTIME_HELP", "RealtimeLimits"]


@dataclass(frozen=True, slots=True)
class RealtimeLimits:
    """Bounds of the real-time endpoint (see the module docstring for the defaults).

    Attributes:
        max_lifetime: seconds a connection may stay open; then it is closed (code 1000)
            and the client reconnects.
        init_timeout: seconds a connection has to send ``connection_init``.
        connections_per_identity: open connections one identity may hold.
        subscriptions_per_identity: subscriptions one identity may hold over all its
            connections.
        subscriptions_per_connection: subscriptions one connection may hold.
        check_interval: seconds between checks of a connection's deadlines: a connection
            ends at most this long after its lifetime or init timeout, a subscription at
            most this long after its credentials expired.

    Raises:
        ConfigError: a value is out of range (one line naming the setting and its flag).
    """

    max_lifetime: float = 86_400.0
    init_timeout: float = 10.0
    connections_per_identity: int = 20
    subscriptions_per_identity: int = 100
    subscriptions_per_connection: int = 100
    check_interval: float = 1.0

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            minimum = _MINIMA[spec.name]
            whole = isinstance(spec.default, int)
            valid_type = isinstance(value, int if whole else int | float)
            if isinstance(value, bool) or not valid_type or not _at_least(value, minimum):
                kind = "an integer" if whole else "a number of seconds"
                raise ConfigError(
                    f"realtime {spec.name} ({_flag(spec.name)}) must be {kind} of at least "
                    f"{minimum:g}, not {value!r}"
                )


_MINIMA: dict[str, float] = {
    "max_lifetime": 1.0,
    "init_timeout": 0.01,
    "connections_per_identity": 1,
    "subscriptions_per_identity": 1,
    "subscriptions_per_connection": 1,
    "check_interval": 0.01,
}

REALTIME_HELP = {
    "max_lifetime": "seconds a connection may stay open (default 86400, as AppSync)",
    "init_timeout": "seconds a connection has to send connection_init (default 10)",
    "connections_per_identity": "open connections per identity (default 20)",
    "subscriptions_per_identity": "subscriptions per identity, all connections (default 100)",
    "subscriptions_per_connection": "subscriptions per connection (default 100, as AppSync)",
    "check_interval": "seconds between deadline checks of a connection (default 1)",
}


def _at_least(value: float, minimum: float) -> bool:
    return math.isfinite(value) and value >= minimum


def _flag(name: str) -> str:
    return "--realtime-" + name.replace("_", "-")
