"""`cogsync migrate`: copy an identity pool's Cognito Sync data to a cogsync backend.

The modules of the package, by what each owns:

* `cogsync.migrate.source`: reading Cognito Sync with boto3 (`CognitoSyncSource`, the
  source records);
* `cogsync.migrate.target`: what a destination offers (`Target`, `TargetDataset`);
* `cogsync.migrate.serve`: the `cogsync serve` destination, through its admin API
  (`ServerTarget`);
* `cogsync.migrate.dynamodb`: the destination ``--to-stack``, a ``server_schema`` stack's
  DynamoDB table (`DynamoTarget`), whose item layout `cogsync.migrate.dynamodb_items`
  holds as pure functions;
* `cogsync.migrate.checkpoint`: the resumable state (`Checkpoint`);
* `cogsync.migrate.migrator`: one run: copy, resume, verify, progress (`Migrator`);
* `cogsync.migrate.cli`: the command line (`add_parser`, `run`, `main`).
"""

from __future__ import annotations

from cogsync.migrate.checkpoint import Checkpoint
from cogsync.migrate.cli import add_parser, main, run
from cogsync.migrate.dynamodb import DynamoTarget
from cogsync.migrate.migrator import MigrationStats, Migrator, dataset_digest
from cogsync.migrate.serve import ServerTarget
from cogsync.migrate.source import (
    CognitoSyncSource,
    SourceDataset,
    SourceRecord,
    SourceRecords,
    SyncCountGone,
)
from cogsync.migrate.target import Target, TargetDataset

__all__ = [
    "Checkpoint",
    "CognitoSyncSource",
    "DynamoTarget",
    "MigrationStats",
    "Migrator",
    "ServerTarget",
    "SourceDataset",
    "SourceRecord",
    "SourceRecords",
    "SyncCountGone",
    "Target",
    "TargetDataset",
    "add_parser",
    "dataset_digest",
    "main",
    "run",
]
