"""`cogsync changes`: the change stream of a `cogsync serve` data directory (Cognito Streams'
successor).

`ChangeLogReader` reads the ordered change log of ``DIR/sync.db`` read-only (safe while the
server runs); `export_changes` copies it, batch by batch, to a sink: `JsonlSink` (JSON lines
to a file or stdout) or `KinesisSink` (``PutRecords`` to a Kinesis data stream). Every
sink knows the last sequence number it wrote, so an export resumes after it.
"""

from __future__ import annotations

from cogsync.changes.export import ChangeSink, export_changes
from cogsync.changes.log import ChangeLogReader
from cogsync.changes.sinks import JsonlSink, KinesisSink, SeqCheckpoint

__all__ = [
    "ChangeLogReader",
    "ChangeSink",
    "JsonlSink",
    "KinesisSink",
    "SeqCheckpoint",
    "export_changes",
]
