"""`config_from_stack`: a client config (``cogsync.json``) from a deployed ``server_schema`` stack.

The stack of ``server_schema/template.yaml`` exports the outputs ``Region``,
``IdentityPoolId``, ``GraphQLUrl`` and ``RealtimeUrl``; this module reads them with boto3's
CloudFormation ``DescribeStacks`` and writes them as a `cogsync.Config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from cogsync.config import Config
from cogsync.exceptions import ConfigError, OfflineError

__all__ = ["STACK_OUTPUTS", "config_from_stack"]

STACK_OUTPUTS = ("Region", "IdentityPoolId", "GraphQLUrl", "RealtimeUrl")
"""The stack outputs a client config is made from."""


def _stack_outputs(stack_name: str, region: str | None) -> dict[str, str]:
    try:
        client: Any = boto3.session.Session(region_name=region).client("cloudformation")
        stacks = client.describe_stacks(StackName=stack_name)["Stacks"]
    except NoRegionError as exc:
        raise ConfigError(
            "no AWS region is configured: pass --region or set AWS_REGION to the stack's region"
        ) from exc
    except NoCredentialsError as exc:
        raise ConfigError(
            "no AWS credentials found: configure credentials that may describe the stack "
            "(aws configure, AWS_PROFILE or environment variables)"
        ) from exc
    except EndpointConnectionError as exc:
        raise OfflineError(f"cannot reach CloudFormation ({exc}); retry later") from exc
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        raise ConfigError(
            f"cannot read stack {stack_name!r}: {message}; check the stack name and region"
        ) from exc
    except BotoCoreError as exc:
        raise ConfigError(f"cannot read stack {stack_name!r}: {exc}") from exc
    if not stacks:
        raise ConfigError(f"stack {stack_name!r} does not exist in this region")
    return {
        str(output["OutputKey"]): str(output["OutputValue"])
        for output in stacks[0].get("Outputs") or ()
        if "OutputKey" in output and "OutputValue" in output
    }


def config_from_stack(stack_name: str, *, region: str | None = None, out: Path) -> Config:
    """Write ``out`` (a ``cogsync.json``) from the outputs of a deployed stack and return it.

    Args:
        stack_name: the CloudFormation stack made from ``server_schema/template.yaml``.
        region: the stack's region; None uses boto3's configured region.
        out: where to write the config.

    Raises:
        ConfigError: the stack cannot be read or lacks an output (named in the message).
        OfflineError: CloudFormation cannot be reached.
    """
    outputs = _stack_outputs(stack_name, region)
    missing = [name for name in STACK_OUTPUTS if not outputs.get(name)]
    if missing:
        raise ConfigError(
            f"stack {stack_name!r} lacks the outputs {', '.join(missing)}: deploy it from "
            "server_schema/template.yaml"
        )
    config = Config(
        region=outputs["Region"],
        identity_pool_id=outputs["IdentityPoolId"],
        graphql_url=outputs["GraphQLUrl"],
        realtime_url=outputs["RealtimeUrl"],
    )
    try:
        config.dump(out)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}") from exc
    return config
