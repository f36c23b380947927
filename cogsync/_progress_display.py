"""Progress on the command line: rich progress bars on a terminal, plain lines otherwise.

`ProgressDisplay` shows one bar per named task (``cogsync migrate``: one; ``cogsync
demo``: one per dataset) and messages above them. It never starts a thread (the bars
redraw when updated), and `close` leaves the terminal as it found it.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["ProgressDisplay"]


class ProgressDisplay:
    """Bars on a terminal, lines elsewhere, written to ``out``.

    Args:
        out: where to write.
        plain_interval: seconds between two plain lines of one task (a terminal redraws
            at most ten times a second).
    """

    def __init__(self, out: TextIO, *, plain_interval: float = 2.0) -> None:
        self._out = out
        self._console = Console(file=out, highlight=False)
        self.tty = self._console.is_terminal
        self._plain_interval = plain_interval
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def update(
        self, name: str, completed: int, total: int, detail: str = "", *, force: bool = False
    ) -> None:
        """Show task ``name`` at ``completed`` of ``total`` (``force``: draw now)."""
        now = time.monotonic()
        with self._lock:
            due = force or now - self._last.get(name, 0.0) >= (
                0.1 if self.tty else self._plain_interval
            )
            if self.tty:
                progress = self._bars()
                task = self._tasks.get(name)
                if task is None:
                    task = self._tasks[name] = progress.add_task(name, total=total, detail=detail)
                progress.update(task, completed=completed, total=max(total, 1), detail=detail)
                if due:
                    progress.refresh()
            elif due:
                line = detail or f"{completed}/{total}"
                self._out.write(f"{name}: {line}\n")
                self._out.flush()
            if due:
                self._last[name] = now

    def message(self, text: str) -> None:
        """A line of its own (above the bars on a terminal)."""
        with self._lock:
            if self._progress is not None:
                self._progress.console.print(text, markup=False)
            else:
                self._out.write(text + "\n")
                self._out.flush()

    def close(self) -> None:
        """Draw the bars a last time and leave the terminal as it was."""
        with self._lock:
            progress, self._progress = self._progress, None
            self._tasks.clear()
        if progress is not None:
            progress.refresh()
            progress.stop()

    def _bars(self) -> Progress:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=30),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[detail]}"),
                console=self._console,
                auto_refresh=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._progress.start()
        return self._progress
