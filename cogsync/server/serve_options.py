"""The ``cogsync serve`` options for apps moving off Cognito: the sync trigger
(``--sync-trigger``) and trusted identity pools (``--trust-identity-pool``), added to the
serve parser by `add_options` and turned into `EmbeddedServer` arguments by
`server_kwargs`."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_options", "server_kwargs"]


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add the options to the ``serve`` parser."""
    parser.add_argument(
        "--sync-trigger",
        metavar="MODULE:FUNCTION",
        help="call FUNCTION(identity_id, dataset_name, patches) with every pushed batch "
        "(Cognito Events' successor; raise cogsync.server.hooks.SyncRejected to refuse)",
    )
    parser.add_argument(
        "--trust-identity-pool",
        action="append",
        default=[],
        metavar="POOL_ID",
        help="accept that Cognito identity pool's OpenID tokens as proof of a migrated "
        "identity (repeatable)",
    )
    parser.add_argument(
        "--trusted-pool-jwks",
        action="append",
        default=[],
        metavar="FILE_OR_URL",
        help="keys of each --trust-identity-pool's issuer, in order (default: Cognito "
        "Identity's public keys, https://cognito-identity.amazonaws.com/.well-known/jwks_uri)",
    )


def server_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """`EmbeddedServer` keyword arguments for the options given (ConfigError if unusable)."""
    from cogsync.server.hooks import ServerHooks, load_sync_trigger
    from cogsync.server.trusted_pools import load_trusted_pools

    kwargs: dict[str, Any] = {}
    if args.sync_trigger:
        kwargs["hooks"] = ServerHooks(sync_trigger=load_sync_trigger(args.sync_trigger))
    if args.trust_identity_pool:
        kwargs["trusted_pools"] = load_trusted_pools(
            args.trust_identity_pool, args.trusted_pool_jwks
        )
    elif args.trusted_pool_jwks:
        from cogsync.exceptions import ConfigError

        raise ConfigError("--trusted-pool-jwks needs --trust-identity-pool")
    return kwargs
