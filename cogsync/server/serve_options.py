"""The ``cogsync serve`` options for apps moving off Cognito: the sync trigger
(``--sync-trigger``) and trusted identity pools (``--trust-identity-pool``), turned into
`EmbeddedServer` arguments by `server_kwargs` (the settings live in
`cogsync.server.settings`)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["server_kwargs"]


def server_kwargs(args: argparse.Namespace | Any) -> dict[str, Any]:
    """`EmbeddedServer` keyword arguments for the options given (ConfigError if unusable).

    ``args`` is a `ServeSettings` or parsed flags (a flag not given may be absent).
    """
    from cogsync.server.hooks import ServerHooks, load_sync_trigger
    from cogsync.server.trusted_pools import load_trusted_pools

    trigger = getattr(args, "sync_trigger", None)
    pools = getattr(args, "trust_identity_pool", None) or []
    jwks = getattr(args, "trusted_pool_jwks", None) or []
    kwargs: dict[str, Any] = {}
    if trigger:
        kwargs["hooks"] = ServerHooks(sync_trigger=load_sync_trigger(trigger))
    if pools:
        kwargs["trusted_pools"] = load_trusted_pools(pools, jwks)
    elif jwks:
        from cogsync.exceptions import ConfigError

        raise ConfigError("--trusted-pool-jwks needs --trust-identity-pool")
    return kwargs
