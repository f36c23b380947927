"""`config_from_stack` against moto's CloudFormation (a stub stack with the template's outputs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from cogsync.config import Config
from cogsync.exceptions import ConfigError
from cogsync.stack import STACK_OUTPUTS, config_from_stack
from tests.aws.conftest import SCHEMA_DIR, _CfnLoader

REGION = "eu-west-1"
OUTPUTS = {
    "Region": REGION,
    "IdentityPoolId": "eu-west-1:11111111-2222-3333-4444-555555555555",
    "GraphQLUrl": "https://abc.appsync-api.eu-west-1.amazonaws.com/graphql",
    "RealtimeUrl": "wss://abc.appsync-realtime-api.eu-west-1.amazonaws.com/graphql",
    "ApiId": "abc",
}


def stub_template(outputs: dict[str, str]) -> str:
    """A template moto can create: one queue, plus the given outputs."""
    return json.dumps(
        {
            "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
            "Outputs": {name: {"Value": value} for name, value in outputs.items()},
        }
    )


@pytest.fixture
def cloudformation(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield boto3.client("cloudformation", region_name=REGION)


def test_the_template_exports_every_output_a_config_needs() -> None:
    import yaml

    template = yaml.load((SCHEMA_DIR / "template.yaml").read_text(), Loader=_CfnLoader)
    assert set(STACK_OUTPUTS) <= set(template["Outputs"])


def test_config_is_written_from_the_stack_outputs(cloudformation, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cloudformation.create_stack(StackName="sync", TemplateBody=stub_template(OUTPUTS))
    out = tmp_path / "cogsync.json"
    config = config_from_stack("sync", region=REGION, out=out)
    assert config == Config(
        region=REGION,
        identity_pool_id=OUTPUTS["IdentityPoolId"],
        graphql_url=OUTPUTS["GraphQLUrl"],
        realtime_url=OUTPUTS["RealtimeUrl"],
    )
    assert Config.load(out) == config


def test_missing_outputs_are_named(cloudformation, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    partial = {k: v for k, v in OUTPUTS.items() if k not in ("GraphQLUrl", "RealtimeUrl")}
    cloudformation.create_stack(StackName="half", TemplateBody=stub_template(partial))
    with pytest.raises(ConfigError, match="GraphQLUrl, RealtimeUrl"):
        config_from_stack("half", region=REGION, out=tmp_path / "cogsync.json")
    assert not (tmp_path / "cogsync.json").exists()


def test_an_unknown_stack_is_a_config_error(cloudformation, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="no-such-stack"):
        config_from_stack("no-such-stack", region=REGION, out=tmp_path / "cogsync.json")
