"""`config_from_stack`: a client config (``cogsync.json``) from a deployed ``server_schema`` stack.

The stack of ``server_schema/template.yaml`` exports the outputs ``Region``,
``IdentityPoolId``, ``GraphQLUrl`` and ``RealtimeUrl``; this module reads them with boto3's
CloudFormation ``DescribeStacks`` (`stack_outputs`, which ``cogsync migrate --to-stack``
uses too) and writes them as a `cogsync.Config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import NoRegionError

from cogsync._boto_errors import BOTO_ERRORS, translate_boto_error
from cogsync.config import Config
from cogsync.exceptions import CogsyncError, ConfigError, OfflineError

__all__ = ["STACK_OUTPUTS", "config_from_stack", "stack_outputs"]

STACK_OUTPUTS = ("Region", "IdentityPoolId", "GraphQLUrl", "RealtimeUrl")
"""The stack outputs a client config is made from."""


def stack_outputs(stack_name: str, region: str | None) -> dict[str, str]:
    """The outputs of a deployed CloudFormation stack, by output key (``DescribeStacks``).

    Args:
        stack_name: the stack's name (or id).
        region: the stack's region; None uses boto3's configured region.

    Raises:
        ConfigError: no region or credentials are configured, or the stack cannot be read.
        OfflineError: CloudFormation cannot be reached.
    """
    try:
        client: Any = boto3.session.Session(region_name=region).client("cloudformation")
        stacks = client.describe_stacks(StackName=stack_name)["Stacks"]
    except BOTO_ERRORS as exc:
        raise translate_boto_error(
            exc,
            answered=lambda code, message, error: ConfigError(
                f"cannot read stack {stack_name!r}: {message or error}; check the stack name "
                "and region"
            ),
            unreachable=lambda error: OfflineError(
                f"cannot reach CloudFormation ({error}); retry later"
            ),
            failed=lambda error: _unreadable(stack_name, error),
            no_credentials=lambda error: ConfigError(
                "no AWS credentials found: configure credentials that may describe the stack "
                "(aws configure, AWS_PROFILE or environment variables)"
            ),
        ) from exc
    if not stacks:
        raise ConfigError(f"stack {stack_name!r} does not exist in this region")
    return {
        str(output["OutputKey"]): str(output["OutputValue"])
        for output in stacks[0].get("Outputs") or ()
        if "OutputKey" in output and "OutputValue" in output
    }


def _unreadable(stack_name: str, exc: Exception) -> CogsyncError:
    if isinstance(exc, NoRegionError):
        return ConfigError(
            "no AWS region is configured: pass --region or set AWS_REGION to the stack's region"
        )
    return ConfigError(f"cannot read stack {stack_name!r}: {exc}")


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
    outputs = stack_outputs(stack_name, region)
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
