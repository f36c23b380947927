"""Smoke tests: `cogsync serve` as a real process, the examples and the README against it."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A `cogsync serve` subprocess; yields (cogsync.json, admin.json)."""
    tmp = tmp_path_factory.mktemp("serve")
    config = tmp / "cogsync.json"
    port = _free_port()
    cmd = [sys.executable, "-m", "cogsync.cli", "serve", "--port", str(port)]
    cmd += ["--data", str(tmp / "data"), "--config-out", str(config)]
    log = (tmp / "serve.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (_listening(port) and config.is_file()):  # the config is written after
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise AssertionError((tmp / "serve.log").read_text())
            time.sleep(0.1)
        assert config.is_file()
        admin = tmp / "data" / "admin.json"
        assert admin.stat().st_mode & 0o777 == 0o600
        assert set(json.loads(admin.read_text())) >= {"access_key_id", "secret_access_key"}
        yield config, admin
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _run(args: list[str], cwd: Path = ROOT / "examples") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "examples")}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_preferences_example(served: tuple[Path, Path]) -> None:
    config, admin = served
    done = _run(["preferences.py", "--config", str(config), "--admin", str(admin)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "desktop now has theme = solarized" in done.stdout


def test_field_app_example(served: tuple[Path, Path]) -> None:
    config, admin = served
    done = _run(["field_app.py", "--config", str(config), "--admin", str(admin)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sync deferred: True" in done.stdout
    assert "pushed 30 records" in done.stdout
    assert "office sees 30 observations" in done.stdout


def test_readme_usage_snippet_runs(served: tuple[Path, Path], tmp_path: Path) -> None:
    config, _ = served
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"## Use it\s+```python\n(.*?)```", readme, re.S)
    assert snippet is not None
    (tmp_path / "cogsync.json").write_text(config.read_text())
    (tmp_path / "snippet.py").write_text(snippet.group(1))
    done = _run([str(tmp_path / "snippet.py")], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "'theme': 'dark'" in done.stdout


def test_cogsync_demo_converges() -> None:
    done = _run(["-m", "cogsync.cli", "demo"], cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "conflict on preferences/theme" in done.stdout
    assert "phone received 'font-size'" in done.stdout
    assert "converged: yes" in done.stdout
    assert "catalog-0: pull 500/500 records" in done.stdout  # progress, as plain lines


def test_cli_help_lists_commands() -> None:
    done = _run(["-m", "cogsync.cli", "--help"], cwd=ROOT)
    for command in ("serve", "demo", "migrate", "inspect"):
        assert command in done.stdout


def test_typed_settings_example(served: tuple[Path, Path]) -> None:
    config, admin = served
    done = _run(["typed_settings.py", "--config", str(config), "--admin", str(admin)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "conflict callbacks: []" in done.stdout
    assert "conflict on: ['font_size']" in done.stdout
    assert "refused: Settings.font_size" in done.stdout
    assert "converged: yes" in done.stdout


def test_live_app_example() -> None:
    done = _run(["live_app.py"])
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "phone   remote change in notes: groceries" in out
    assert "laptop  is offline" in out and "laptop  is online" in out
    assert "converged after the outage" in out and "pending changes: 0" in out
