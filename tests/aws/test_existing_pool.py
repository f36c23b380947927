"""template.yaml with ``ExistingIdentityPoolId``: no pool, no role attachment, a managed
policy on the existing roles; the outputs (and ``cogsync config from-stack``) as usual."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from cogsync.cli import main as cli_main
from cogsync.config import Config
from tests.aws.conftest import SCHEMA_DIR
from tests.aws.render import of_type, render

POOL = "eu-west-1:0f2c0000-1111-2222-3333-444455556666"
EXISTING = {
    "ExistingIdentityPoolId": POOL,
    "ExistingAuthenticatedRoleName": "MyApp_Auth_Role",
    "ExistingGuestRoleName": "MyApp_Unauth_Role",
}
SIX_FIELDS = {
    "Query/fields/serverInfo",
    "Query/fields/listDatasets",
    "Query/fields/listRecords",
    "Mutation/fields/pushRecords",
    "Mutation/fields/deleteDataset",
    "Subscription/fields/onDatasetChanged",
}


def api_fields(policy: dict[str, object]) -> set[str]:
    """The API fields a managed policy grants (``${Api.Arn}/types/<field>``), and only those."""
    document = policy["Properties"]["PolicyDocument"]  # type: ignore[index]
    (statement,) = document["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "appsync:GraphQL"
    fields = set()
    for resource in statement["Resource"]:
        prefix = "${Api.Arn}/types/"
        assert resource["Sub"].startswith(prefix), resource
        fields.add(resource["Sub"].removeprefix(prefix))
    return fields


def test_an_existing_pool_gets_no_new_pool_roles_or_attachment() -> None:
    rendered = render(EXISTING)
    assert of_type(rendered, "AWS::Cognito::IdentityPool") == {}
    assert of_type(rendered, "AWS::Cognito::IdentityPoolRoleAttachment") == {}
    roles = of_type(rendered, "AWS::IAM::Role")
    assert list(roles) == ["DataSourceRole"]  # only AppSync's own role to the table
    (policy,) = of_type(rendered, "AWS::IAM::ManagedPolicy").values()
    assert policy["Properties"]["Roles"] == ["MyApp_Auth_Role", "MyApp_Unauth_Role"]
    assert api_fields(policy) == SIX_FIELDS
    assert rendered["Outputs"]["IdentityPoolId"] == POOL


def test_without_guests_the_existing_guest_role_is_left_alone() -> None:
    rendered = render({**EXISTING, "AllowGuests": "false"})
    (policy,) = of_type(rendered, "AWS::IAM::ManagedPolicy").values()
    assert policy["Properties"]["Roles"] == ["MyApp_Auth_Role"]
    without_guest_role = render({**EXISTING, "ExistingGuestRoleName": ""})
    (policy,) = of_type(without_guest_role, "AWS::IAM::ManagedPolicy").values()
    assert policy["Properties"]["Roles"] == ["MyApp_Auth_Role"]


def test_by_default_the_stack_creates_the_pool_and_its_roles() -> None:
    rendered = render()
    assert list(of_type(rendered, "AWS::Cognito::IdentityPool")) == ["IdentityPool"]
    (attachment,) = of_type(rendered, "AWS::Cognito::IdentityPoolRoleAttachment").values()
    assert attachment["Properties"]["Roles"] == {
        "authenticated": {"GetAtt": "AuthenticatedRole.Arn"},
        "unauthenticated": {"GetAtt": "GuestRole.Arn"},
    }
    (policy,) = of_type(rendered, "AWS::IAM::ManagedPolicy").values()
    assert policy["Properties"]["Roles"] == [{"Ref": "GuestRole"}, {"Ref": "AuthenticatedRole"}]
    assert api_fields(policy) == SIX_FIELDS
    for role in ("GuestRole", "AuthenticatedRole"):
        assert "Policies" not in rendered["Resources"][role]["Properties"]
    assert rendered["Outputs"]["IdentityPoolId"] == {"Ref": "IdentityPool"}


def test_an_existing_pool_must_name_its_authenticated_role() -> None:
    from tests.aws.render import load_template

    rule = load_template()["Rules"]["ExistingPoolNeedsItsRole"]
    assert rule["RuleCondition"] == {"Not": [{"Equals": [{"Ref": "ExistingIdentityPoolId"}, ""]}]}
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"] == {
        "Not": [{"Equals": [{"Ref": "ExistingAuthenticatedRoleName"}, ""]}]
    }


def test_cfn_lint_passes() -> None:
    lint = shutil.which("cfn-lint") or str(Path(__import__("sys").executable).parent / "cfn-lint")
    result = subprocess.run(
        [lint, str(SCHEMA_DIR / "template.yaml")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def cloudformation(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield boto3.client("cloudformation", region_name="eu-west-1")


@pytest.mark.parametrize("parameters", [EXISTING, {}], ids=["existing-pool", "new-pool"])
def test_config_from_stack_reads_both_modes(
    cloudformation,
    tmp_path: Path,
    parameters: dict[str, str],  # type: ignore[no-untyped-def]
) -> None:
    """The rendered outputs, as deployed values, make the same client config in both modes."""
    deployed = {
        "IdentityPool": "eu-west-1:99990000-1111-2222-3333-444455556666",
        "Api.GraphQLUrl": "https://abc.appsync-api.eu-west-1.amazonaws.com/graphql",
        "Api.RealtimeUrl": "wss://abc.appsync-realtime-api.eu-west-1.amazonaws.com/graphql",
        "Api.ApiId": "abc",
        "Table": "cogsync-Table-1",
    }

    def value(node: object) -> str:
        if isinstance(node, dict):
            (reference,) = node.values()
            return deployed[reference]
        return str(node)

    outputs = {name: value(v) for name, v in render(parameters)["Outputs"].items()}
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {name: {"Value": v} for name, v in outputs.items()},
    }
    cloudformation.create_stack(StackName="sync", TemplateBody=json.dumps(template))
    out = tmp_path / "cogsync.json"
    code = cli_main(["config", "from-stack", "sync", "--region", "eu-west-1", "--out", str(out)])
    assert code == 0
    config = Config.load(out)
    expected_pool = POOL if parameters else deployed["IdentityPool"]
    assert config.identity_pool_id == expected_pool
    assert config.graphql_url == deployed["Api.GraphQLUrl"]
    assert config.realtime_url == deployed["Api.RealtimeUrl"]
    assert config.region == "eu-west-1"
