"""Shared by the examples: connect to a running `cogsync serve`, or start one in-process."""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cogsync import Config
from cogsync.demo import developer_login


@contextlib.contextmanager
def server_and_logins(argv: list[str] | None, user: str) -> Iterator[tuple[Config, dict[str, str]]]:
    """Yield (config, logins for ``user``) from --config/--admin, or an embedded server."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, help="cogsync.json written by `cogsync serve`")
    parser.add_argument("--admin", type=Path, help="the server's DIR/admin.json")
    args = parser.parse_args(argv)
    if args.config and args.admin:
        config = Config.load(args.config)
        admin = json.loads(args.admin.read_text())
        yield (
            config,
            developer_login(config, admin["access_key_id"], admin["secret_access_key"], user),
        )
        return
    from cogsync.server.runner import EmbeddedServer

    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(Path(tmp), port=0) as server:
        key = server.admin_credentials
        config = server.config
        yield config, developer_login(config, key.access_key_id, key.secret_access_key, user)
