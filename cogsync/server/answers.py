"""AppSync-shaped answers from graphql-core results: error types, error entries, responses.

An answer is ``{"data": ..., "errors": [{"message", "errorType", "errorInfo", "path",
"locations"}]}``. An expected error (a refusal, a conflict, a limit, a refused sync
trigger, bad input) keeps its message and gets AppSync's ``errorType``; an unexpected one
is logged here and reaches the client only as a generic ``InternalFailure``.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import ExecutionResult, GraphQLError

from cogsync.exceptions import (
    ConflictError,
    DatasetLimitExceededError,
    DatasetSizeLimitExceededError,
    LimitExceededError,
    RecordLimitExceededError,
    UsageError,
)
from cogsync.server.hooks import SyncRejected
from cogsync.server.wire import RequestRefused, graphql_error

__all__ = ["error_type", "format_error", "response"]

# Resolver failures are logged under the resolvers' logger, where operators look for them.
logger = logging.getLogger("cogsync.server.resolvers")

_LIMIT_NAMES: dict[type[LimitExceededError], str] = {
    DatasetLimitExceededError: "datasets",
    RecordLimitExceededError: "records",
    DatasetSizeLimitExceededError: "bytes",
}


def error_type(exc: BaseException) -> tuple[str, dict[str, Any] | None] | None:
    """AppSync's errorType and errorInfo for an expected error; None if unexpected."""
    if isinstance(exc, RequestRefused):
        return exc.error_type, None
    if isinstance(exc, ConflictError):
        return "ConflictException", {
            "key": exc.key,
            "current": exc.current,
            "expected": exc.expected,
        }
    if isinstance(exc, LimitExceededError):
        name = next((n for t, n in _LIMIT_NAMES.items() if isinstance(exc, t)), "records")
        return "LimitExceededException", {
            "limit": name,
            "max": exc.limit,
            "attempted": exc.attempted,
        }
    if isinstance(exc, SyncRejected):
        return "InvalidParameterException", {"rejectedBy": "syncTrigger"}
    if isinstance(exc, UsageError):
        return "InvalidParameterException", None
    return None


def format_error(error: GraphQLError) -> dict[str, Any]:
    """One AppSync error entry for a graphql-core error."""
    original = error.original_error
    mapped = error_type(original) if original is not None else None
    message = error.message
    if mapped is None and error.path is None:
        mapped = ("ValidationError", None)  # variables, operation selection, coercion
    if mapped is None:
        logger.error("GraphQL resolver failed at %s: %s", error.path, error, exc_info=original)
        mapped = ("InternalFailure", None)
        message = "the server failed to handle this request; retry later (see the server log)"
    locations = error.locations
    return graphql_error(
        mapped[0],
        message,
        mapped[1],
        list(error.path) if error.path is not None else None,
        [{"line": loc.line, "column": loc.column} for loc in locations] if locations else None,
    )


def response(result: ExecutionResult) -> dict[str, Any]:
    """The AppSync-shaped answer of an execution result."""
    answer: dict[str, Any] = {"data": result.data}
    if result.errors:
        answer["errors"] = [format_error(e) for e in result.errors]
    return answer
