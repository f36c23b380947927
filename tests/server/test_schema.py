"""The executable schema: the packaged copy matches the wire contract and builds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from graphql import GraphQLError, StringValueNode, graphql_sync, parse, validate

from cogsync.server.schema import format_datetime, load_schema, parse_datetime, schema_sdl

ROOT = Path(__file__).resolve().parents[2]


def test_packaged_schema_is_byte_identical_to_the_contract() -> None:
    contract = (ROOT / "server_schema" / "schema.graphql").read_bytes()
    assert schema_sdl().encode("utf-8") == contract, (
        "cogsync/server/schema.graphql drifted from server_schema/schema.graphql: copy it over"
    )


def test_schema_builds_with_appsync_declarations() -> None:
    schema = load_schema()
    assert schema.query_type is not None and schema.mutation_type is not None
    assert set(schema.query_type.fields) == {"serverInfo", "listDatasets", "listRecords"}
    assert set(schema.mutation_type.fields) == {"pushRecords", "deleteDataset"}
    assert schema.subscription_type is not None
    assert "onDatasetChanged" in schema.subscription_type.fields
    for name in ("aws_iam", "aws_subscribe", "aws_cognito_user_pools", "aws_auth"):
        assert schema.get_directive(name) is not None
    document = parse(
        'subscription { onDatasetChanged(identityId: "x") { syncCount records { key } } }'
    )
    assert validate(schema, document) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00.000Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:30:05.123456789+02:00", datetime(2024, 5, 1, 12, 30, 5, 123000, UTC)),
        ("2024-05-01T00:00:00.5-01:00", datetime(2024, 5, 1, 1, 0, 0, 500000, UTC)),
    ],
)
def test_datetime_parses_to_utc_milliseconds(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.tzinfo == UTC


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01",
        "2024-05-01T12:00:00",
        "2024-05-01 12:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "2024-05-01T12:00:00.0000000000Z",
        "yesterday",
    ],
)
def test_datetime_parsing_is_strict(text: str) -> None:
    with pytest.raises(ValueError, match="AWSDateTime"):
        parse_datetime(text)


def test_datetime_formats_with_z_and_milliseconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    value = datetime(2024, 1, 2, 5, 4, 5, 678901, tzinfo=plus_two)
    assert format_datetime(value) == "2024-01-02T03:04:05.678Z"
    with pytest.raises(ValueError, match="time zone"):
        format_datetime(datetime(2024, 1, 1))


def test_datetime_scalar_coerces_inputs_and_literals() -> None:
    scalar = load_schema().type_map["AWSDateTime"]
    coerce = getattr(scalar, "coerce_input_value", None) or scalar.parse_value  # type: ignore[attr-defined]
    assert coerce("2024-05-01T12:00:00Z") == datetime(2024, 5, 1, 12, tzinfo=UTC)
    with pytest.raises(GraphQLError, match="AWSDateTime"):
        coerce("not a date")
    literal = getattr(scalar, "coerce_input_literal", None) or scalar.parse_literal  # type: ignore[attr-defined]
    assert literal(StringValueNode(value="2024-05-01T12:00:00Z")) == datetime(
        2024, 5, 1, 12, tzinfo=UTC
    )


def test_bad_datetime_literal_fails_validation() -> None:
    result = graphql_sync(
        load_schema(),
        'mutation { pushRecords(input: {datasetName: "d", clientRequestId: "r", deviceId: "x", '
        'protocolVersion: 1, records: [{op: REPLACE, key: "k", value: "v", syncCount: 0, '
        'deviceLastModifiedDate: "tomorrow"}]}) { syncCount } }',
    )
    assert result.errors and "AWSDateTime" in result.errors[0].message
