"""`export_changes`: copy a change log to a sink in order, once or following it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from cogsync.changes.log import ChangeLogReader
from cogsync.server.changes import ChangeEntry

__all__ = ["ChangeSink", "export_changes"]


class ChangeSink(Protocol):
    """Where an export writes: `JsonlSink`, `KinesisSink`."""

    @property
    def last_seq(self) -> int:
        """The sequence number of the last entry written for good (0: none)."""
        ...

    def write(self, entries: Sequence[ChangeEntry]) -> None:
        """Write entries (in order) for good; `last_seq` then is the last one's."""
        ...


def export_changes(
    reader: ChangeLogReader,
    sink: ChangeSink,
    *,
    after_seq: int = 0,
    follow: bool = False,
    poll_interval: float = 0.5,
    batch: int = 500,
    stop: threading.Event | None = None,
) -> int:
    """Write every entry after ``max(after_seq, sink.last_seq)`` to ``sink``, oldest first.

    With ``follow`` it keeps polling for new entries until ``stop`` is set. Returns the
    sequence number of the last entry written (the start point if none).
    """
    stop = stop or threading.Event()
    last = max(after_seq, sink.last_seq)
    while not stop.is_set():
        entries = reader.read(last, batch)
        if entries:
            sink.write(entries)
            last = entries[-1].seq
            continue
        if not follow:
            break
        stop.wait(poll_interval)
    return last
