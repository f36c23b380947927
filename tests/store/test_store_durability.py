"""SQLiteStore across processes: acknowledged writes survive SIGKILL; writers never see locks."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cogsync.store.sqlite import SQLiteStore

OWNER = "eu-west-1:durable"

# argv: path, dataset prefix, number of puts. Prints "ready", waits for a line on stdin,
# then prints each key (or "limit KEY") only after write_local has returned.
WRITER = """
import sys
from cogsync.exceptions import RecordLimitExceededError
from cogsync.models import utcnow
from cogsync.store.sqlite import SQLiteStore

path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SQLiteStore(path)
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    key = f"{prefix}{i}"
    dataset = prefix.rstrip("-") + f"{i // 1000}" if prefix.endswith("-") else "shared"
    try:
        store.write_local("eu-west-1:durable", dataset, {key: "v" * 64}, utcnow())
    except RecordLimitExceededError:
        print("limit", key, flush=True)
        continue
    print(key, flush=True)
store.close()
"""


def start_writer(path: Path, prefix: str, count: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), prefix, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def run_together(path: Path, prefixes: tuple[str, ...], count: int) -> list[str]:
    """Run one writer per prefix at once on ``path``; return every word they printed."""
    SQLiteStore(path).close()
    writers = [start_writer(path, prefix, count) for prefix in prefixes]
    for proc in writers:  # all are ready: start them together
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    words = []
    for proc in writers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "locked" not in err and err == ""
        words += out.split()
    return words


def stored_keys(path: Path) -> dict[str, str | None]:
    store = SQLiteStore(path)
    try:
        return {
            key: rec.value
            for ds in store.list_datasets(OWNER)
            for key, rec in store.get_records(OWNER, ds.name).items()
        }
    finally:
        store.close()


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_acknowledged_puts_survive_sigkill(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "device.db"
    proc = start_writer(path, "d-", 20_000)
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the kill comes after the first put, however busy the machine
    time.sleep(random.Random(seed).uniform(0.0, 0.5))
    proc.send_signal(signal.SIGKILL)
    # Read on through the same buffered stream: readline() may already hold later lines,
    # which communicate() (reading the pipe itself) would drop.
    out = proc.stdout.read()
    proc.wait(timeout=10)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    acknowledged = (first + out).split()
    assert proc.returncode == -signal.SIGKILL
    assert acknowledged, "the writer printed no acknowledged put"
    stored = stored_keys(path)
    missing = [key for key in acknowledged if stored.get(key) != "v" * 64]
    assert missing == []
    # At most the one put in flight at the kill may have landed unacknowledged.
    assert len(stored) - len(acknowledged) in (0, 1)


def test_two_processes_write_concurrently_without_lock_errors(tmp_path: Path) -> None:
    path = tmp_path / "device.db"
    acknowledged = run_together(path, ("a-", "b-"), 1000)
    assert len(acknowledged) == 2000
    assert set(stored_keys(path)) == set(acknowledged)


def test_concurrent_writers_never_exceed_a_limit_together(tmp_path: Path) -> None:
    path = tmp_path / "device.db"
    lines = run_together(path, ("a", "b"), 600)
    refused = [word for i, word in enumerate(lines) if i and lines[i - 1] == "limit"]
    accepted = [word for word in lines if word != "limit" and word not in refused]
    assert len(accepted) == 1024 and len(refused) == 1200 - 1024
    assert set(stored_keys(path)) == set(accepted)
