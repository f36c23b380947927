"""The optional parts of template.yaml: the change stream (Kinesis streaming destination)."""

from __future__ import annotations

from tests.aws.render import of_type, render

STREAM = "arn:aws:kinesis:eu-west-1:123456789012:stream/cogsync-changes"


def test_change_stream_arn_streams_the_table() -> None:
    (table,) = of_type(render({"ChangeStreamArn": STREAM}), "AWS::DynamoDB::Table").values()
    assert table["Properties"]["KinesisStreamSpecification"] == {
        "StreamArn": STREAM,
        "ApproximateCreationDateTimePrecision": "MILLISECOND",
    }
    (table,) = of_type(render(), "AWS::DynamoDB::Table").values()
    assert "KinesisStreamSpecification" not in table["Properties"]
