"""One translation of botocore failures into the cogsync error tree.

Each AWS-facing shell (Cognito Identity, the Cognito Sync source, CloudFormation, DynamoDB)
says what each kind of failure means for its caller; this module decides which kind a
botocore exception is.
"""

from __future__ import annotations

from collections.abc import Callable

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
)

from cogsync.exceptions import CogsyncError

__all__ = ["BOTO_ERRORS", "client_error_code", "is_unreachable", "translate_boto_error"]

BOTO_ERRORS: tuple[type[Exception], ...] = (ClientError, BotoCoreError)
"""What a boto3 call raises; catch these and hand them to `translate_boto_error`."""

Translate = Callable[[Exception], CogsyncError]


def client_error_code(exc: ClientError) -> tuple[str, str]:
    """The error code and message AWS answered with (empty strings if absent)."""
    error = exc.response.get("Error", {})
    return str(error.get("Code", "")), str(error.get("Message", ""))


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the service could not be reached (connect, read or TLS failure)."""
    return isinstance(exc, ConnectionError | HTTPClientError)


def translate_boto_error(
    exc: Exception,
    *,
    answered: Callable[[str, str, ClientError], CogsyncError],
    unreachable: Translate,
    failed: Translate,
    no_credentials: Translate | None = None,
    bad_parameters: Translate | None = None,
) -> CogsyncError:
    """The cogsync error for a botocore failure.

    Args:
        exc: what the boto3 call raised.
        answered: for an error answer from AWS: (code, message, exception) -> error.
        unreachable: for a connection failure.
        failed: for any other botocore failure.
        no_credentials: for missing AWS credentials (else ``failed``).
        bad_parameters: for parameters botocore refused before sending (else ``failed``).
    """
    if isinstance(exc, ClientError):
        code, message = client_error_code(exc)
        return answered(code, message, exc)
    if is_unreachable(exc):
        return unreachable(exc)
    if no_credentials is not None and isinstance(exc, NoCredentialsError):
        return no_credentials(exc)
    if bad_parameters is not None and isinstance(exc, ParamValidationError):
        return bad_parameters(exc)
    return failed(exc)
