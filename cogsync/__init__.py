"""cogsync: offline-first per-identity key/value datasets, synced across devices.

The successor of AWS Cognito Sync: `Client` / `AsyncClient` keep an identity's datasets in
a local SQLite file and synchronize them with `cogsync serve` or AppSync + DynamoDB.
"""

from cogsync.config import Config
from cogsync.exceptions import (
    CogsyncError,
    ConfigError,
    ConflictError,
    DatasetLimitExceededError,
    DatasetSizeLimitExceededError,
    InvalidKeyError,
    InvalidNameError,
    InvalidValueError,
    LimitExceededError,
    NotAuthorizedError,
    OfflineError,
    RecordLimitExceededError,
    ServerError,
    UnsyncedChangesError,
    UsageError,
)
from cogsync.limits import Limits
from cogsync.models import Conflict, DatasetMetadata, Record, Resolution, SyncResult

__version__ = "0.1.0"

__all__ = [
    "CogsyncError",
    "Config",
    "ConfigError",
    "Conflict",
    "ConflictError",
    "DatasetLimitExceededError",
    "DatasetMetadata",
    "DatasetSizeLimitExceededError",
    "InvalidKeyError",
    "InvalidNameError",
    "InvalidValueError",
    "LimitExceededError",
    "Limits",
    "NotAuthorizedError",
    "OfflineError",
    "Record",
    "RecordLimitExceededError",
    "Resolution",
    "ServerError",
    "SyncResult",
    "UnsyncedChangesError",
    "UsageError",
]
