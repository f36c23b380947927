"""Inputs shared by the migrate tests: the command line and maximum-size values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from fake_cognito import FakeCognitoServer

from cogsync.server.runner import EmbeddedServer

MAX_DATASET_BYTES = 1_048_576
BIG_KEY = "big"


def max_size_value(key: str) -> str:
    """A value that fills a dataset to exactly the 1 MB limit, with 2-byte characters."""
    room = MAX_DATASET_BYTES - len(key.encode())
    return "é" * 1000 + "x" * (room - 2000)


def migrate_args(
    cognito: FakeCognitoServer, server: EmbeddedServer, checkpoint: Path, *extra: str
) -> list[str]:
    """The ``cogsync migrate`` arguments for the fake pool into ``server``."""
    return [
        "--identity-pool-id",
        cognito.state.pool_id,
        "--region",
        "us-east-1",
        "--source-endpoint-url",
        cognito.url,
        "--to",
        str(server.data_dir / "cogsync.json"),
        "--admin-credentials",
        str(server.data_dir / "admin.json"),
        "--checkpoint",
        str(checkpoint),
        *extra,
    ]


def identity_admin(server: EmbeddedServer) -> Any:
    """A boto3 ``cognito-identity`` client of ``server`` signed with its admin key."""
    admin = server.admin_credentials
    return boto3.client(
        "cognito-identity",
        region_name="us-east-1",
        endpoint_url=server.url,
        aws_access_key_id=admin.access_key_id,
        aws_secret_access_key=admin.secret_access_key,
    )
