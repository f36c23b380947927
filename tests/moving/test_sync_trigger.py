"""``cogsync serve --sync-trigger module:function`` end to end: a spawned server loads the
operator's trigger, which rejects and modifies batches that real clients push."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cogsync import Client, Config
from cogsync.exceptions import ConfigError, UsageError
from cogsync.models import PatchOp, RecordPatch
from cogsync.server.hooks import load_sync_trigger
from tests.moving.operator_trigger import check, handler

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Config]:
    """`cogsync serve --port 0 --sync-trigger tests.moving.operator_trigger:check`."""
    config_path = tmp_path / "cogsync.json"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "cogsync.cli", "serve", "--port", "0"),
            *("--data", str(tmp_path / "data"), "--config-out", str(config_path)),
            *("--sync-trigger", "tests.moving.operator_trigger:check"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert "listening on" in first, first + process.stderr.read()
        yield Config.load(config_path)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)


def test_the_trigger_rejects_and_modifies_batches_end_to_end(
    served: Config, tmp_path: Path
) -> None:
    with Client(served, db_path=tmp_path / "a.db") as device:
        scores = device.open_or_create_dataset("scores")
        scores.put("shout", "hello")
        scores.put("quiet", "hello")
        scores.synchronize()
        scores.synchronize()  # the batch came back modified: the device learns it
        assert scores.get("shout") == "HELLO" and scores.get("quiet") == "hello"
        scores.put("forbidden", "x")
        with pytest.raises(UsageError, match="the key 'forbidden' is not allowed"):
            scores.synchronize()
        identity_id = device.identity_id
    with Client(served, db_path=tmp_path / "b.db", identity_id=identity_id) as other:
        copy = other.open_or_create_dataset("scores")
        copy.synchronize()
        assert copy.get_all() == {"shout": "HELLO", "quiet": "hello"}


def test_a_bad_trigger_spec_is_one_line(tmp_path: Path) -> None:
    for spec, message in (
        ("no_colon", "must be module:function"),
        ("tests.moving.no_such_module:f", "cannot import 'tests.moving.no_such_module'"),
        ("tests.moving.operator_trigger:nothing", "is not a function"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_sync_trigger(spec)
    result = subprocess.run(
        [
            *(sys.executable, "-m", "cogsync.cli", "serve", "--port", "0"),
            *("--data", str(tmp_path), "--sync-trigger", "no_colon"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cogsync serve: --sync-trigger 'no_colon' must be module:function"
    ]


def test_the_lambda_adapter_keeps_the_contract() -> None:
    device_time = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    event = {
        "identityId": "us-east-1:aaaaaaaa-0000-4000-8000-000000000001",
        "datasetName": "scores",
        "records": [
            {
                "op": "REPLACE",
                "key": "shout",
                "value": "hi",
                "syncCount": 2,
                "deviceLastModifiedDate": "2024-05-01T12:00:00.123Z",
            },
            {"op": "REMOVE", "key": "old", "value": None, "syncCount": 1},
        ],
    }
    assert handler(event, None) == {
        "records": [
            {
                "op": "REPLACE",
                "key": "shout",
                "value": "HI",
                "syncCount": 2,
                "deviceLastModifiedDate": "2024-05-01T12:00:00.123Z",
            },
            {
                "op": "REMOVE",
                "key": "old",
                "value": None,
                "syncCount": 1,
                "deviceLastModifiedDate": None,
            },
        ]
    }
    rejected = {**event, "records": [{"key": "forbidden", "value": "x", "syncCount": 0}]}
    assert handler(rejected, None) == {"rejected": "scores: the key 'forbidden' is not allowed"}
    patch = RecordPatch(PatchOp.REPLACE, "shout", "a", 0, device_time)
    assert check("id", "d", [patch])[0].value == "A"
