"""`cogsync changes export`: the change log of a running server, in order, exactly once into
a file across SIGKILLs, and at least once (here exactly once) into Kinesis on moto."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from cogsync import Client
from cogsync.changes import ChangeLogReader, KinesisSink, SeqCheckpoint, export_changes
from cogsync.cli import main as cli_main
from cogsync.server.runner import EmbeddedServer

STREAM = "cogsync-changes"


def sync_rounds(server: EmbeddedServer, db: Path, rounds: int, name: str) -> None:
    """One device: ``rounds`` pushes of a growing dataset."""
    with Client(server.config, db_path=db) as client:
        dataset = client.open_or_create_dataset(name)
        for n in range(rounds):
            dataset.put(f"k{n % 7}", f"{name}-{n}")
            dataset.synchronize()


def all_changes(server: EmbeddedServer) -> list[dict[str, Any]]:
    assert server.storage is not None
    return [c.to_json() for c in server.storage.read_changes(limit=1_000_000)]


def exported(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def spawn(data: Path, out: Path) -> subprocess.Popen[str]:
    """The exporter, once it has said where it starts (its signal handlers are set)."""
    command = [sys.executable, "-m", "cogsync.cli", "changes", "export", "--data", str(data)]
    process = subprocess.Popen(
        [*command, "--follow", "--out", str(out), "--poll", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    assert "exporting after sequence" in process.stderr.readline()
    return process


def test_follow_while_devices_sync_survives_sigkill(tmp_path: Path) -> None:
    out = tmp_path / "changes.jsonl"
    with EmbeddedServer(tmp_path / "data") as server:
        exporter = spawn(server.data_dir, out)
        devices = [
            threading.Thread(target=sync_rounds, args=(server, tmp_path / f"d{i}.db", 25, f"ds{i}"))
            for i in range(3)
        ]
        for device in devices:
            device.start()
        for _ in range(3):  # kill the exporter mid-stream, then resume it
            time.sleep(0.7)
            exporter.send_signal(signal.SIGKILL)
            exporter.communicate(timeout=10)
            exporter = spawn(server.data_dir, out)
        for device in devices:
            device.join(timeout=120)
        expected = all_changes(server)
        deadline = time.monotonic() + 30
        while exported(out)[-1:] != expected[-1:] and time.monotonic() < deadline:
            time.sleep(0.05)
        exporter.send_signal(signal.SIGTERM)
        _, err = exporter.communicate(timeout=10)
    assert exporter.returncode == 0, err
    assert len(expected) == 3 * 25  # every accepted batch is one change
    assert exported(out) == expected  # each once, in order, nothing torn or missing
    assert [c["seq"] for c in expected] == sorted({c["seq"] for c in expected})
    assert f"exported up to sequence {expected[-1]['seq']}" in err


def test_a_torn_last_line_is_cut_and_rewritten(tmp_path: Path) -> None:
    out = tmp_path / "changes.jsonl"
    with EmbeddedServer(tmp_path / "data") as server:
        sync_rounds(server, tmp_path / "d.db", 4, "ds")
        expected = all_changes(server)
    lines = [json.dumps(c, separators=(",", ":")) + "\n" for c in expected[:2]]
    out.write_text("".join(lines) + lines[0][:17], encoding="utf-8")  # killed mid-line
    data = str(tmp_path / "data")
    assert cli_main(["changes", "export", "--data", data, "--out", str(out)]) == 0
    assert exported(out) == expected
    assert cli_main(["changes", "export", "--data", data, "--out", str(out)]) == 0
    assert exported(out) == expected  # a re-run writes nothing twice


def test_after_and_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with EmbeddedServer(tmp_path / "data") as server:
        sync_rounds(server, tmp_path / "d.db", 5, "ds")
        expected = all_changes(server)
        data = str(tmp_path / "data")
        capsys.readouterr()
        assert cli_main(["changes", "export", "--data", data, "--after", "2"]) == 0
    captured = capsys.readouterr()
    assert "exporting after sequence 2" in captured.err
    lines = captured.out.splitlines()
    assert [json.loads(line) for line in lines] == expected[2:]


def test_a_directory_without_server_data_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["changes", "export", "--data", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "sync.db does not exist" in line


# -- Kinesis (moto) ------------------------------------------------------------------------


@pytest.fixture
def kinesis(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        client = boto3.client("kinesis", region_name="us-east-1")
        client.create_stream(StreamName=STREAM, ShardCount=1)
        yield client


def read_stream(client: Any) -> list[dict[str, Any]]:
    shard = client.list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
    iterator = client.get_shard_iterator(
        StreamName=STREAM, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    while True:
        page = client.get_records(ShardIterator=iterator, Limit=1000)
        records += [{**json.loads(r["Data"]), "_key": r["PartitionKey"]} for r in page["Records"]]
        if not page["Records"]:
            return records
        iterator = page["NextShardIterator"]


def test_kinesis_export_resumes_from_its_checkpoint(kinesis: Any, tmp_path: Path) -> None:
    checkpoint = tmp_path / "kinesis.json"
    with EmbeddedServer(tmp_path / "data") as server:
        data = str(server.data_dir)
        command = ["changes", "export", "--data", data, "--to-kinesis", STREAM]
        command += ["--region", "us-east-1", "--checkpoint", str(checkpoint)]
        sync_rounds(server, tmp_path / "a.db", 6, "first")
        assert cli_main(command) == 0
        first = all_changes(server)
        assert json.loads(checkpoint.read_text())["lastSeq"] == first[-1]["seq"]
        sync_rounds(server, tmp_path / "b.db", 4, "second")
        assert cli_main(command) == 0
        expected = all_changes(server)
    records = read_stream(kinesis)
    assert [{k: v for k, v in r.items() if k != "_key"} for r in records] == expected
    assert all(r["_key"] == r["identityId"] for r in records)


class _Flaky:
    """A kinesis client that throttles once, then accepts only the first 3 records once."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0

    def put_records(self, **params: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            error = {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}
            raise ClientError({"Error": error}, "PutRecords")
        if self.calls == 2:
            records = params["Records"]
            self.client.put_records(Records=records[:3], StreamName=params["StreamName"])
            failed = {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
            return {
                "FailedRecordCount": len(records) - 3,
                "Records": [{"SequenceNumber": "1", "ShardId": "s"}] * 3
                + [failed] * (len(records) - 3),
            }
        return self.client.put_records(**params)  # type: ignore[no-any-return]


def test_failed_records_are_resent_in_order(kinesis: Any, tmp_path: Path) -> None:
    with EmbeddedServer(tmp_path / "data") as server:
        sync_rounds(server, tmp_path / "a.db", 8, "ds")
        expected = all_changes(server)
        checkpoint = SeqCheckpoint(tmp_path / "k.json", "kinesis " + STREAM)
        flaky = _Flaky(kinesis)
        sink = KinesisSink(STREAM, flaky, checkpoint, sleep=lambda _: None)
        reader = ChangeLogReader(server.data_dir)
        assert export_changes(reader, sink) == expected[-1]["seq"]
        reader.close()
    assert flaky.calls == 3 and sink.resent == len(expected) - 3
    records = read_stream(kinesis)
    assert [r["seq"] for r in records] == [c["seq"] for c in expected]
    assert checkpoint.last_seq == expected[-1]["seq"]


def test_an_unknown_stream_is_one_line(
    kinesis: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with EmbeddedServer(tmp_path / "data") as server:
        sync_rounds(server, tmp_path / "a.db", 1, "ds")
        code = cli_main(
            [
                *("changes", "export", "--data", str(server.data_dir)),
                *("--to-kinesis", "nope", "--checkpoint", str(tmp_path / "k.json")),
            ]
        )
    assert code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("cogsync changes:") and "Kinesis stream nope not found" in line
    assert not os.path.exists(tmp_path / "k.json")
