"""The optional parts of template.yaml: the change stream (Kinesis streaming destination) and
the sync trigger (a Lambda function in the push pipeline)."""

from __future__ import annotations

import re
from typing import Any

from tests.aws.render import load_template, of_type, render

STREAM = "arn:aws:kinesis:eu-west-1:123456789012:stream/cogsync-changes"


def test_change_stream_arn_streams_the_table() -> None:
    (table,) = of_type(render({"ChangeStreamArn": STREAM}), "AWS::DynamoDB::Table").values()
    assert table["Properties"]["KinesisStreamSpecification"] == {
        "StreamArn": STREAM,
        "ApproximateCreationDateTimePrecision": "MILLISECOND",
    }
    (table,) = of_type(render(), "AWS::DynamoDB::Table").values()
    assert "KinesisStreamSpecification" not in table["Properties"]


TRIGGER = "arn:aws:lambda:eu-west-1:123456789012:function:check-scores"


def _push_pipeline(rendered: dict[str, Any]) -> list[str]:
    (resolver,) = (
        r
        for r in of_type(rendered, "AWS::AppSync::Resolver").values()
        if r["Properties"]["FieldName"] == "pushRecords"
    )
    functions = of_type(rendered, "AWS::AppSync::FunctionConfiguration")
    ids = [
        ref["GetAtt"].split(".")[0] for ref in resolver["Properties"]["PipelineConfig"]["Functions"]
    ]
    return [functions[i]["Properties"]["Name"] for i in ids]


def test_sync_trigger_function_arn_adds_the_trigger_to_the_push_pipeline() -> None:
    rendered = render({"SyncTriggerFunctionArn": TRIGGER})
    assert _push_pipeline(rendered) == ["getDataset", "syncTrigger", "measurePush", "commitPush"]
    (source,) = (
        s
        for s in of_type(rendered, "AWS::AppSync::DataSource").values()
        if s["Properties"]["Type"] == "AWS_LAMBDA"
    )
    assert source["Properties"]["LambdaConfig"] == {"LambdaFunctionArn": TRIGGER}
    role = rendered["Resources"][source["Properties"]["ServiceRoleArn"]["GetAtt"].split(".")[0]]
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "appsync.amazonaws.com"}
    (policy,) = role["Properties"]["Policies"]
    assert policy["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": TRIGGER}
    ]


def test_without_a_trigger_the_stack_has_no_lambda_and_measures_first() -> None:
    rendered = render()
    assert _push_pipeline(rendered) == ["measurePush", "getDataset", "commitPush"]
    kinds = {
        s["Properties"]["Type"] for s in of_type(rendered, "AWS::AppSync::DataSource").values()
    }
    assert kinds == {"AMAZON_DYNAMODB", "NONE"}
    assert not [
        r
        for r in rendered["Resources"].values()
        if "lambda" in str(r.get("Properties", {})).lower()
    ]


def test_the_trigger_parameter_takes_a_lambda_function_arn_or_nothing() -> None:
    pattern = load_template()["Parameters"]["SyncTriggerFunctionArn"]["AllowedPattern"]
    for good in ("", TRIGGER, TRIGGER + ":live", TRIGGER + ":7"):
        assert re.fullmatch(pattern, good), good
    for bad in (
        "check-scores",
        "arn:aws:lambda:eu-west-1:123456789012:layer:x",
        "arn:aws:iam::123456789012:role/x",
        TRIGGER + " ",
    ):
        assert not re.fullmatch(pattern, bad), bad
