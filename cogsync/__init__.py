"""cogsync: offline-first per-identity key/value datasets, synced across devices.

The successor of AWS Cognito Sync: `Client` / `AsyncClient` keep an identity's datasets in
a local SQLite file and synchronize them with `cogsync serve` or AppSync + DynamoDB.
"""

from cogsync.blocking import Client, Dataset
from cogsync.client import AsyncClient
from cogsync.config import Config
from cogsync.dataset import AsyncDataset
from cogsync.engine.conflicts import last_writer_wins, local_wins, remote_wins
from cogsync.events import ChangeEvent, Subscription
from cogsync.exceptions import (
    CogsyncError,
    ConfigError,
    ConflictError,
    DatasetLimitExceededError,
    DatasetSizeLimitExceededError,
    IdentityConflictError,
    InvalidKeyError,
    InvalidNameError,
    InvalidValueError,
    LimitExceededError,
    NotAuthorizedError,
    OfflineError,
    RecordLimitExceededError,
    RecordValidationError,
    ServerError,
    StorageCorruptError,
    StorageError,
    StorageFullError,
    SyncAllError,
    UnsyncedChangesError,
    UsageError,
)
from cogsync.limits import Limits
from cogsync.merge import merge_json
from cogsync.models import Conflict, DatasetMetadata, Record, Resolution, SyncResult
from cogsync.progress import SyncProgress
from cogsync.status import ClientStatus, DatasetStatus
from cogsync.typed.blocking import TypedDataset, TypedRecords
from cogsync.typed.dataset import AsyncTypedDataset, AsyncTypedRecords

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AsyncDataset",
    "AsyncTypedDataset",
    "AsyncTypedRecords",
    "ChangeEvent",
    "Client",
    "ClientStatus",
    "CogsyncError",
    "Config",
    "ConfigError",
    "Conflict",
    "ConflictError",
    "Dataset",
    "DatasetLimitExceededError",
    "DatasetMetadata",
    "DatasetSizeLimitExceededError",
    "DatasetStatus",
    "IdentityConflictError",
    "InvalidKeyError",
    "InvalidNameError",
    "InvalidValueError",
    "LimitExceededError",
    "Limits",
    "NotAuthorizedError",
    "OfflineError",
    "Record",
    "RecordLimitExceededError",
    "RecordValidationError",
    "Resolution",
    "ServerError",
    "StorageCorruptError",
    "StorageError",
    "StorageFullError",
    "Subscription",
    "SyncAllError",
    "SyncProgress",
    "SyncResult",
    "TypedDataset",
    "TypedRecords",
    "UnsyncedChangesError",
    "UsageError",
    "last_writer_wins",
    "local_wins",
    "merge_json",
    "remote_wins",
]
