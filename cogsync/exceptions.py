"""Every error cogsync raises, grouped by what the caller should do about it.

The tree::

    CogsyncError
    ├── UsageError                     your fault: fix the call, retrying will not help
    │   ├── InvalidNameError           dataset name not 1-128 chars of [A-Za-z0-9_.:-]
    │   ├── InvalidKeyError            record key not 1-128 UTF-8 bytes
    │   ├── InvalidValueError          record value is not a str
    │   ├── LimitExceededError         a write would break a limit; nothing was written
    │   │   ├── DatasetLimitExceededError      more than 20 datasets per identity
    │   │   ├── RecordLimitExceededError       more than 1,024 records in a dataset
    │   │   └── DatasetSizeLimitExceededError  more than 1,048,576 bytes in a dataset
    │   ├── UnsyncedChangesError       wipe_data() refused: local changes not yet synced
    │   ├── IdentityConflictError      another client switched the device file's identity
    │   └── ConfigError                a cogsync.json or command-line setting is wrong
    ├── ConflictError                  a push met a newer sync count and was not resolved
    ├── NotAuthorizedError             credentials or logins refused; log in again
    ├── OfflineError                   the server is unreachable; local data is intact, retry later
    ├── ServerError                    the server failed or answered nonsense; retry may help
    ├── RecordValidationError          a stored record does not fit a typed dataset's model
    ├── StorageError                   the device's SQLite file failed; nothing was half-written
    │   ├── StorageFullError           the disk is full: free space and retry
    │   └── StorageCorruptError        the file is damaged: inspect it or restore from the server
    └── SyncAllError                   synchronize_all() could not sync every dataset; it is
                                       also an instance of the first failure's class

Each error says whether a retry can help in its ``retryable`` attribute.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from cogsync.models import SyncResult

__all__ = [
    "CogsyncError",
    "ConfigError",
    "ConflictError",
    "DatasetLimitExceededError",
    "DatasetSizeLimitExceededError",
    "IdentityConflictError",
    "InvalidKeyError",
    "InvalidNameError",
    "InvalidValueError",
    "LimitExceededError",
    "NotAuthorizedError",
    "OfflineError",
    "RecordLimitExceededError",
    "RecordValidationError",
    "ServerError",
    "StorageCorruptError",
    "StorageError",
    "StorageFullError",
    "SyncAllError",
    "UnsyncedChangesError",
    "UsageError",
]


class CogsyncError(Exception):
    """Root of every error cogsync raises."""

    retryable: bool = False


class UsageError(CogsyncError):
    """The call itself is wrong; change the call (retrying the same call will fail again)."""


class InvalidNameError(UsageError, ValueError):
    """A dataset name is not 1-128 characters of ``[A-Za-z0-9_.:-]``."""


class InvalidKeyError(UsageError, ValueError):
    """A record key is empty or longer than 128 UTF-8 bytes."""


class InvalidValueError(UsageError, TypeError):
    """A record value is not a ``str`` (store JSON as text; use ``remove`` to delete)."""


class LimitExceededError(UsageError):
    """A write would exceed a limit; nothing was written.

    Attributes:
        limit: the limit that would be broken.
        attempted: the value the write would have reached.
    """

    def __init__(self, message: str, *, limit: int = 0, attempted: int = 0) -> None:
        super().__init__(message)
        self.limit = limit
        self.attempted = attempted


class DatasetLimitExceededError(LimitExceededError):
    """An identity would hold more datasets than allowed (20 by default)."""


class RecordLimitExceededError(LimitExceededError):
    """A dataset would hold more records than allowed (1,024 by default)."""


class DatasetSizeLimitExceededError(LimitExceededError):
    """A dataset's keys and values would exceed the size limit (1,048,576 bytes by default)."""


class UnsyncedChangesError(UsageError):
    """``wipe_data()`` refused because local changes were never synced; sync or pass force=True."""


class IdentityConflictError(UsageError):
    """Another client switched the device file to an identity this one cannot act for.

    Nothing was read or written. Reopen the client (with that identity's logins).
    """


class ConfigError(UsageError):
    """A configuration file or setting is missing or malformed."""


class ConflictError(CogsyncError):
    """A push was rejected because the server holds a newer version of a record.

    The sync engine resolves these by itself; this error reaches the app only when
    retries are exhausted (another device keeps writing) -- sync again later.

    Attributes:
        key: the record key whose sync count was stale, if known.
        current: the server's sync count for that record.
        expected: the sync count the push expected.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        current: int | None = None,
        expected: int | None = None,
    ) -> None:
        super().__init__(message)
        self.key = key
        self.current = current
        self.expected = expected


class NotAuthorizedError(CogsyncError):
    """The server refused the credentials, signature or logins; obtain new logins or credentials."""


class OfflineError(CogsyncError):
    """The server could not be reached; local data is intact and the call can be retried later."""

    retryable = True


class ServerError(CogsyncError):
    """The server failed or sent an answer that does not follow the protocol; retry later."""

    retryable = True


class RecordValidationError(CogsyncError):
    """Stored records of a typed dataset do not validate against its model.

    Another version of the app (newer or older) wrote them; nothing was changed, locally or
    on the server. Upgrade the app, add a schema upgrade (``cogsync_upgrade``), or replace
    the values on purpose (``put(..., overwrite_invalid=True)``).

    Attributes:
        dataset: the dataset's name.
        errors: record key -> what is wrong with its stored value.
        values: record key -> the stored value (text, None if absent).
    """

    def __init__(
        self,
        message: str,
        *,
        dataset: str = "",
        errors: Mapping[str, str] | None = None,
        values: Mapping[str, str | None] | None = None,
    ) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.errors: dict[str, str] = dict(errors or {})
        self.values: dict[str, str | None] = dict(values or {})


class StorageError(CogsyncError):
    """The device's local SQLite file failed; the failed call changed nothing.

    Attributes:
        path: the file, if known.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class StorageFullError(StorageError):
    """The disk holding the device file is full; free space and retry (nothing was written)."""

    retryable = True


class StorageCorruptError(StorageError):
    """The device file is damaged; ``cogsync inspect`` it, or restore it from the server."""


class SyncAllError(CogsyncError):
    """``synchronize_all()`` tried every dataset and some failed; the others are synced.

    The error raised is also an instance of the first failure's class (in dataset order),
    with that error's attributes (``retryable``, ``key``, ``limit``...), so ``except
    OfflineError`` still catches an offline `synchronize_all`; the first failure is its
    ``__cause__``.

    Attributes:
        results: dataset name -> `SyncResult` of every dataset that synced.
        errors: dataset name -> the error of every dataset that failed (dataset order).
    """

    def __init__(
        self,
        message: str,
        *,
        results: Mapping[str, SyncResult] | None = None,
        errors: Mapping[str, Exception] | None = None,
    ) -> None:
        super().__init__(message)
        self.results: dict[str, SyncResult] = dict(results or {})
        self.errors: dict[str, Exception] = dict(errors or {})

    @classmethod
    def from_failures(
        cls, results: Mapping[str, SyncResult], errors: Mapping[str, Exception]
    ) -> SyncAllError:
        """The error for a partly failed ``synchronize_all`` (``errors`` must not be empty).

        Its class derives from both `SyncAllError` and the first error's class; its
        arguments and attributes are the first error's.
        """
        first = next(iter(errors.values()))
        try:
            combined = _combined(type(first))
            error = combined.__new__(combined, *first.args)
            with contextlib.suppress(TypeError):  # fills built-in fields (errno, encoding...)
                type(first).__init__(error, *first.args)
            error.args = first.args
            error.__dict__.update(first.__dict__)
        except TypeError:  # a class that cannot be combined or rebuilt
            error = cls(str(first))
        error.results = dict(results)
        error.errors = dict(errors)
        return error

    def __str__(self) -> str:
        failed = ", ".join(self.errors)
        message = super().__str__()
        if not self.errors:
            return message
        return f"{len(self.errors)} dataset(s) failed to sync ({failed}): {message}"


_COMBINED: dict[type[Exception], type[SyncAllError]] = {}


def _combined(error_class: type[Exception]) -> type[SyncAllError]:
    """``SyncAll<Name>``: a `SyncAllError` that is also an ``error_class`` (made once)."""
    if issubclass(error_class, SyncAllError):
        return error_class
    if error_class not in _COMBINED:
        name = f"SyncAll{error_class.__name__}"
        _COMBINED[error_class] = type(name, (SyncAllError, error_class), {})
    return _COMBINED[error_class]
