"""The sync protocol's GraphQL schema as `cogsync serve` executes it.

The packaged ``cogsync/server/schema.graphql`` is the very file AppSync runs (a copy of
``server_schema/schema.graphql``). graphql-core does not know AppSync's built-in scalars
and directives, so they are declared in front of it here, and the scalars get AppSync's
serialization rules (``AWSDateTime``: ISO-8601 UTC with milliseconds and ``Z``, the codec of
`cogsync._awsdatetime`, whose `format_datetime` / `parse_datetime` are re-exported here).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLScalarType,
    GraphQLSchema,
    IntValueNode,
    StringValueNode,
    ValueNode,
    build_schema,
)

from cogsync._awsdatetime import DATETIME_HINT, format_datetime, parse_datetime

__all__ = [
    "APPSYNC_DECLARATIONS",
    "format_datetime",
    "load_schema",
    "parse_datetime",
    "schema_sdl",
]

APPSYNC_DECLARATIONS = """
scalar AWSDate
scalar AWSTime
scalar AWSDateTime
scalar AWSTimestamp
scalar AWSEmail
scalar AWSJSON
scalar AWSURL
scalar AWSPhone
scalar AWSIPAddress

directive @aws_iam on OBJECT | FIELD_DEFINITION
directive @aws_subscribe(mutations: [String]) on FIELD_DEFINITION
directive @aws_cognito_user_pools(cognito_groups: [String]) on OBJECT | FIELD_DEFINITION
directive @aws_api_key on OBJECT | FIELD_DEFINITION
directive @aws_oidc on OBJECT | FIELD_DEFINITION
directive @aws_lambda on OBJECT | FIELD_DEFINITION
directive @aws_auth(cognito_groups: [String]) on FIELD_DEFINITION
"""
"""AppSync's built-in scalars and directives, declared for graphql-core."""


# A page's records, and a push's, mostly share a few times: convert each once.
_format_datetime = lru_cache(maxsize=4096)(format_datetime)


def _serialize_datetime(value: Any) -> str:
    if isinstance(value, str):
        value = parse_datetime(value)
    if not isinstance(value, datetime):
        raise GraphQLError(f"AWSDateTime cannot represent {type(value).__name__} value")
    return _format_datetime(value)


_parse_datetime = lru_cache(maxsize=4096)(parse_datetime)


def _parse_datetime_value(value: Any) -> datetime:
    if not isinstance(value, str):
        raise GraphQLError(f"AWSDateTime must be a string: {DATETIME_HINT}")
    try:
        return _parse_datetime(value)
    except ValueError as exc:
        raise GraphQLError(str(exc)) from exc


def _parse_datetime_literal(node: ValueNode, _variables: Any = None) -> datetime:
    if not isinstance(node, StringValueNode):
        raise GraphQLError(f"AWSDateTime must be a string literal: {DATETIME_HINT}")
    return _parse_datetime_value(node.value)


def _parse_json_value(value: Any) -> Any:
    if not isinstance(value, str):
        raise GraphQLError("AWSJSON must be a string holding JSON")
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise GraphQLError(f"AWSJSON is not valid JSON: {exc}") from exc


def _parse_json_literal(node: ValueNode, _variables: Any = None) -> Any:
    if not isinstance(node, StringValueNode):
        raise GraphQLError("AWSJSON must be a string literal holding JSON")
    return _parse_json_value(node.value)


def _parse_timestamp_value(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GraphQLError("AWSTimestamp must be an integer number of seconds since the epoch")
    return value


def _parse_timestamp_literal(node: ValueNode, _variables: Any = None) -> int:
    if not isinstance(node, IntValueNode):
        raise GraphQLError("AWSTimestamp must be an integer literal")
    return int(node.value)


def _parse_string_value(value: Any) -> str:
    if not isinstance(value, str):
        raise GraphQLError(f"expected a string, got {type(value).__name__}")
    return value


def _parse_string_literal(node: ValueNode, _variables: Any = None) -> str:
    if not isinstance(node, StringValueNode):
        raise GraphQLError("expected a string literal")
    return node.value


_SCALAR_FUNCTIONS: dict[str, tuple[Callable[..., Any], ...]] = {
    "AWSDateTime": (_serialize_datetime, _parse_datetime_value, _parse_datetime_literal),
    "AWSJSON": (json.dumps, _parse_json_value, _parse_json_literal),
    "AWSTimestamp": (_parse_timestamp_value, _parse_timestamp_value, _parse_timestamp_literal),
}
_STRING_FUNCTIONS = (str, _parse_string_value, _parse_string_literal)
_COERCER_NAMES = (
    ("serialize", "coerce_output_value"),
    ("parse_value", "coerce_input_value"),
    ("parse_literal", "coerce_input_literal"),
)


def _configure_scalars(schema: GraphQLSchema) -> None:
    for name, type_ in schema.type_map.items():
        if isinstance(type_, GraphQLScalarType) and name.startswith("AWS"):
            functions = _SCALAR_FUNCTIONS.get(name, _STRING_FUNCTIONS)
            for names, function in zip(_COERCER_NAMES, functions, strict=True):
                for attribute in names:  # graphql-core 3.2 names, and 3.3's new ones
                    if attribute in vars(type_):
                        setattr(type_, attribute, function)


def schema_sdl() -> str:
    """The packaged ``schema.graphql`` text, exactly as shipped."""
    return resources.files("cogsync.server").joinpath("schema.graphql").read_text("utf-8")


@cache
def load_schema() -> GraphQLSchema:
    """Build (once) the executable schema: AppSync declarations + the packaged file."""
    schema = build_schema(APPSYNC_DECLARATIONS + schema_sdl())
    _configure_scalars(schema)
    return schema
