"""Sinks of `export_changes`: `JsonlSink` (JSON lines) and `KinesisSink` (Kinesis Data
Streams), each resumable from the last sequence number it wrote.

`JsonlSink` writing to a file finds that number in the file itself (its last complete
line; a torn last line from a killed run is cut off), so a resumed export continues without
gap or repeat. `KinesisSink` records it in a `SeqCheckpoint` after each ``PutRecords``
batch that Kinesis accepted whole: a batch in flight when the process died is sent again
(at least once). Records failed by Kinesis are sent again from the first failed one, so
each identity's records (its partition key) keep their order.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import ClientError

from cogsync._atomic_file import write_atomically
from cogsync._backoff import backoff_delays
from cogsync._boto_errors import BOTO_ERRORS, client_error_code, translate_boto_error
from cogsync.exceptions import (
    CogsyncError,
    ConfigError,
    NotAuthorizedError,
    OfflineError,
    ServerError,
)
from cogsync.server.changes import ChangeEntry

__all__ = ["JsonlSink", "KinesisSink", "SeqCheckpoint", "entry_line"]

_MAX_RECORDS = 500
_MAX_BATCH_BYTES = 5 * 1024 * 1024
_THROTTLED = frozenset(
    {"ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException"}
)
_REFUSED = frozenset(
    {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"}
)


def entry_line(entry: ChangeEntry) -> str:
    """One change as a compact JSON object (no newline)."""
    return json.dumps(entry.to_json(), ensure_ascii=False, separators=(",", ":"))


class SeqCheckpoint:
    """The last sequence number written, in a small JSON file replaced atomically.

    Args:
        path: the file (read if it exists).
        target: what the export writes to; a checkpoint of another target is refused.
    """

    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self.target = target
        self.last_seq = 0
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                seq, owner = int(data["lastSeq"]), str(data["target"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"checkpoint {path} is unreadable ({exc})") from exc
            if owner != target:
                raise ConfigError(
                    f"checkpoint {path} belongs to {owner!r}, not {target!r}: pass another "
                    "--checkpoint"
                )
            self.last_seq = seq

    def save(self, seq: int) -> None:
        """Record ``seq`` as written (temp file + ``os.replace``)."""
        write_atomically(self.path, json.dumps({"target": self.target, "lastSeq": seq}))
        self.last_seq = seq


def _last_complete_line(path: Path) -> tuple[int, bytes]:
    """(length of the file up to its last newline, the last complete line without it)."""
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        tail = b""
        while end > 0:  # read backwards until the last two newlines are in ``tail``
            start = max(0, end - 65536)
            handle.seek(start)
            tail = handle.read(end - start) + tail
            end = start
            newline = tail.rfind(b"\n")
            if newline >= 0 and tail.rfind(b"\n", 0, newline) >= 0:
                break
    keep = tail.rfind(b"\n") + 1  # a torn last line (no newline yet) is dropped
    body = tail[:keep]
    return end + keep, body[:-1].rsplit(b"\n", 1)[-1] if body else b""


class JsonlSink:
    """JSON lines (`entry_line`) to a file (appended, resumable) or a text stream.

    Args:
        out: a file path, or an open text stream (then ``checkpoint`` makes it resumable).
        checkpoint: where to record the last sequence number for a stream.
    """

    def __init__(self, out: Path | TextIO, *, checkpoint: SeqCheckpoint | None = None) -> None:
        self._checkpoint = checkpoint
        self._last = checkpoint.last_seq if checkpoint is not None else 0
        if isinstance(out, Path):
            self._last = max(self._last, self._resume(out))
            self._stream: TextIO = out.open("a", encoding="utf-8")
            self._file = True
        else:
            self._stream, self._file = out, False

    @staticmethod
    def _resume(path: Path) -> int:
        if not path.exists():
            return 0
        length, line = _last_complete_line(path)
        os.truncate(path, length)
        if not line:
            return 0
        try:
            return int(json.loads(line)["seq"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path} does not end with a change line ({exc}): pass another --out"
            ) from exc

    @property
    def last_seq(self) -> int:
        """The sequence number of the last line written."""
        return self._last

    def write(self, entries: Sequence[ChangeEntry]) -> None:
        """Write one line per entry, flushed (and synced to disk for a file)."""
        if not entries:
            return
        self._stream.write("".join(entry_line(e) + "\n" for e in entries))
        self._stream.flush()
        if self._file:
            os.fsync(self._stream.fileno())
        self._last = entries[-1].seq
        if self._checkpoint is not None:
            self._checkpoint.save(self._last)

    def close(self) -> None:
        """Close the file (a stream given by the caller stays open)."""
        if self._file:
            self._stream.close()


class KinesisSink:
    """``PutRecords`` batches to a Kinesis data stream, one record per change.

    Each record's data is `entry_line` (UTF-8), its partition key the identity id.

    Args:
        stream: the stream's name or ARN.
        client: a boto3 ``kinesis`` client.
        checkpoint: the last sequence number Kinesis accepted.
        max_attempts: attempts per batch while Kinesis throttles or fails records.
        sleep: waits between attempts (for tests).
    """

    def __init__(
        self,
        stream: str,
        client: Any,
        checkpoint: SeqCheckpoint,
        *,
        max_attempts: int = 10,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._name = {"StreamARN" if stream.startswith("arn:") else "StreamName": stream}
        self.stream = stream
        self._client = client
        self._checkpoint = checkpoint
        self._max_attempts = max_attempts
        self._sleep = sleep
        self.resent = 0
        """Records sent again after Kinesis failed them or an earlier one (for reports)."""

    @property
    def last_seq(self) -> int:
        """The sequence number of the last change Kinesis accepted."""
        return self._checkpoint.last_seq

    def write(self, entries: Sequence[ChangeEntry]) -> None:
        """Put the entries, in batches of up to 500 records / 5 MB, checkpointing each."""
        batch: list[tuple[int, dict[str, Any]]] = []
        size = 0
        for entry in entries:
            data = entry_line(entry).encode("utf-8")
            record = {"Data": data, "PartitionKey": entry.identity_id}
            record_size = len(data) + len(entry.identity_id.encode("utf-8"))
            if batch and (len(batch) == _MAX_RECORDS or size + record_size > _MAX_BATCH_BYTES):
                self._put(batch)
                batch, size = [], 0
            batch.append((entry.seq, record))
            size += record_size
        if batch:
            self._put(batch)

    def _put(self, batch: list[tuple[int, dict[str, Any]]]) -> None:
        pending = [record for _, record in batch]
        delays = backoff_delays(initial=0.1, maximum=5.0)
        for attempt in range(1, self._max_attempts + 1):
            try:
                answer = self._client.put_records(Records=pending, **self._name)
            except ClientError as exc:
                code = client_error_code(exc)[0]
                if code in _THROTTLED and attempt < self._max_attempts:
                    self._sleep(next(delays))
                    continue
                raise self._translate(exc) from exc
            except BOTO_ERRORS as exc:
                raise self._translate(exc) from exc
            results = answer.get("Records", [])
            failed = next((i for i, r in enumerate(results) if r.get("ErrorCode")), None)
            if failed is None:
                self._checkpoint.save(batch[-1][0])
                return
            # Resend from the first failure on: later records of the same identity must
            # not overtake it (they may arrive twice: at least once).
            self.resent += len(pending) - failed
            pending = pending[failed:]
            if attempt < self._max_attempts:
                self._sleep(next(delays))
        raise ServerError(
            f"Kinesis kept failing records of stream {self.stream}; run again to resume"
        )

    def _translate(self, exc: Exception) -> CogsyncError:
        def answered(code: str, message: str, error: ClientError) -> CogsyncError:
            if code == "ResourceNotFoundException":
                return ConfigError(f"Kinesis stream {self.stream} not found ({message})")
            if code in _REFUSED:
                return NotAuthorizedError(
                    f"Kinesis refused the credentials ({code}): allow kinesis:PutRecords on "
                    f"{self.stream}"
                )
            return ServerError(f"Kinesis PutRecords failed ({code}: {message})")

        return translate_boto_error(
            exc,
            answered=answered,
            unreachable=lambda e: OfflineError(f"cannot reach Kinesis ({e}); run again"),
            failed=lambda e: ServerError(f"Kinesis PutRecords failed: {e}"),
            no_credentials=lambda e: ConfigError(
                "no AWS credentials found for Kinesis (AWS_PROFILE or environment variables)"
            ),
        )
