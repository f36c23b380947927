"""The ``Dockerfile`` and ``docs/self-hosting.md``: linted always, built and probed with docker."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from cogsync.server.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_the_dockerfile_has_the_required_lines() -> None:
    lines = [line.strip() for line in DOCKERFILE.splitlines()]
    assert any(line.startswith("FROM python:") and line.endswith("-slim") for line in lines)
    assert "USER cogsync" in lines
    assert 'VOLUME ["/data"]' in lines
    assert "COGSYNC_DATA=/data \\" in lines and "COGSYNC_HOST=0.0.0.0 \\" in lines
    assert "HEALTHCHECK" in DOCKERFILE and "/ready" in DOCKERFILE
    assert "STOPSIGNAL SIGTERM" in lines
    assert lines[-1] == 'ENTRYPOINT ["python", "-m", "cogsync", "serve"]'
    assert DOCKERFILE.index("USER cogsync") > DOCKERFILE.index("RUN pip install")
    for name in ("COGSYNC_HOST", "COGSYNC_PORT", "COGSYNC_DATA", "COGSYNC_LOG_FORMAT"):
        assert name in {s.env for s in SETTINGS}


def test_the_self_hosting_table_lists_every_setting() -> None:
    doc = (ROOT / "docs" / "self-hosting.md").read_text()
    for setting in SETTINGS:
        row = f"| `{setting.name}` | `{setting.flag}` | `{setting.env}` |"
        assert row in doc, setting.name


def _docker_usable() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed"
    info = subprocess.run(["docker", "info"], capture_output=True, timeout=60, check=False)
    return None if info.returncode == 0 else "docker cannot reach a daemon"


def test_the_image_builds_and_becomes_ready() -> None:
    reason = _docker_usable()
    if reason is not None:
        pytest.skip(f"{reason}: the Dockerfile is only linted")
    tag = "cogsync-test:latest"
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=900)
    run = ["docker", "run", "-d", "--rm", "-p", "127.0.0.1::8080", tag]
    container = subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip()
    try:
        port = (
            subprocess.run(
                ["docker", "port", container, "8080"], capture_output=True, text=True, check=True
            )
            .stdout.split(":")[-1]
            .strip()
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as a:
                    assert a.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the container never became ready"
                time.sleep(1)
    finally:
        subprocess.run(["docker", "stop", container], capture_output=True, check=False)
