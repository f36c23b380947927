"""The ``cogsync`` command refuses bad input with one line and a non-zero exit."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cogsync.store.sqlite import SQLiteStore

OWNER = "us-east-1:00000000-0000-0000-0000-000000000003"


def cogsync(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cogsync.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_serve_refuses_a_port_out_of_range(tmp_path: Path, port: str) -> None:
    result = cogsync("serve", "--data", "data", "--port", port, cwd=tmp_path)
    assert_one_line_refusal(result, "--port", port)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("keepalive", ["0", "-5", "0.001", "nan"])
def test_serve_refuses_a_keepalive_that_would_flood_connections(
    tmp_path: Path, keepalive: str
) -> None:
    result = cogsync(
        "serve", "--data", "data", "--port", "0", "--keepalive", keepalive, cwd=tmp_path
    )
    assert_one_line_refusal(result, "--keepalive")


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--realtime-max-lifetime", "0"),
        ("--realtime-init-timeout", "nan"),
        ("--realtime-connections-per-identity", "0"),
        ("--realtime-subscriptions-per-identity", "-1"),
        ("--realtime-subscriptions-per-connection", "0"),
        ("--realtime-check-interval", "0"),
    ],
)
def test_serve_refuses_realtime_limits_out_of_range(tmp_path: Path, flag: str, value: str) -> None:
    result = cogsync("serve", "--data", "data", "--port", "0", flag, value, cwd=tmp_path)
    assert_one_line_refusal(result, flag, value)
    assert not (tmp_path / "data").exists()


def test_inspect_shows_a_device_file_without_changing_it(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "device.db")
    store.attach_identity(OWNER)
    store.write_local(OWNER, "prefs", {"theme": "dark"}, now=datetime(2024, 1, 1, tzinfo=UTC))
    store.close()
    before = digest(tmp_path)
    result = cogsync("inspect", "device.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert OWNER in result.stdout and "theme" in result.stdout and "'dark'" in result.stdout
    assert digest(tmp_path) == before


def test_inspect_says_plainly_that_an_apps_file_is_not_a_device_file(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "app.db")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    before = digest(tmp_path)
    result = cogsync("inspect", "app.db", cwd=tmp_path)
    assert_one_line_refusal(result, "not a cogsync device file")
    assert digest(tmp_path) == before


@pytest.mark.parametrize("content", [b"garbage" * 1000, b"SQLite format 3\x00" + bytes(4000)])
def test_inspect_on_a_damaged_file_is_one_line(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "device.db").write_bytes(content)
    result = cogsync("inspect", "device.db", cwd=tmp_path)
    assert_one_line_refusal(result, "device.db")
    assert (tmp_path / "device.db").read_bytes() == content


def test_inspect_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    result = cogsync("inspect", "missing.db", cwd=tmp_path)
    assert_one_line_refusal(result, "missing.db")
    assert not list(tmp_path.iterdir())
