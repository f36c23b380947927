"""The admin import/export API of `cogsync serve` and the migration checkpoint file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import urllib3

from cogsync.exceptions import ConfigError, LimitExceededError
from cogsync.migrate import Checkpoint, dataset_digest
from cogsync.migrate.serve import ServerTarget
from cogsync.migrate.source import SourceRecord, SourceRecords
from cogsync.server.runner import EmbeddedServer

IDENTITY = "eu-west-1:6f1c4a52-6d0e-4f43-9b7e-2b8c1a0e7d11"
WHEN = datetime(2021, 5, 4, 3, 2, 1, 123000, tzinfo=UTC)


def record(key: str, value: str | None, count: int) -> SourceRecord:
    return SourceRecord(key, value, count, WHEN, "device-a", WHEN)


@pytest.fixture
def target(server: EmbeddedServer) -> ServerTarget:
    return ServerTarget(server.data_dir / "cogsync.json", server.data_dir / "admin.json")


def test_import_keeps_ids_values_dates_and_counts(
    server: EmbeddedServer, target: ServerTarget
) -> None:
    data = SourceRecords(9, (record("a", "1", 3), record("b", None, 7), record("c", "ü", 9)))
    assert target.import_dataset(IDENTITY, "prefs", data) == 3
    assert server.identity_db.identity(IDENTITY) is not None
    assert server.storage is not None
    page = server.storage.list_records(IDENTITY, "prefs", 0)
    assert page.sync_count == 9
    assert [(r.key, r.value, r.sync_count) for r in page.records] == [
        ("a", "1", 3),
        ("b", None, 7),
        ("c", "ü", 9),
    ]
    assert page.records[0].last_modified_date == WHEN
    assert page.records[0].device_last_modified_date == WHEN
    assert page.records[0].last_modified_by == "device-a"
    assert [r.key for r in server.storage.list_records(IDENTITY, "prefs", 7).records] == ["c"]


def test_import_is_idempotent_and_incremental(server: EmbeddedServer, target: ServerTarget) -> None:
    assert server.storage is not None
    data = SourceRecords(2, (record("a", "1", 1), record("b", "2", 2)))
    target.import_dataset(IDENTITY, "prefs", data)
    logged = len(server.storage.read_changes())
    assert target.import_dataset(IDENTITY, "prefs", data) == 0
    assert len(server.storage.read_changes()) == logged
    assert target.import_dataset(IDENTITY, "prefs", SourceRecords(3, (record("b", "3", 3),))) == 1
    exported = target.export_dataset(IDENTITY, "prefs")
    assert exported.sync_count == 3
    assert dict(exported.pairs) == {"a": "1", "b": "3"}
    gone = SourceRecords(3, (), exists=False)
    target.import_dataset(IDENTITY, "prefs", gone, deleted=True)
    assert target.export_dataset(IDENTITY, "prefs").exists is False
    assert dict(target.export_dataset(IDENTITY, "prefs").pairs) == {"a": None, "b": None}


def test_import_after_devices_wrote_gets_new_sync_counts(
    server: EmbeddedServer, target: ServerTarget
) -> None:
    assert server.storage is not None
    target.import_dataset(IDENTITY, "prefs", SourceRecords(1, (record("a", "1", 1),)))
    from cogsync.models import PatchOp, RecordPatch

    server.storage.push_records(
        IDENTITY,
        "prefs",
        [RecordPatch(PatchOp.REPLACE, "z", "device", 0)],
        client_request_id="r2",
        device_id="d",
    )
    target.import_dataset(IDENTITY, "prefs", SourceRecords(1, (record("a", "late", 1),)))
    page = server.storage.list_records(IDENTITY, "prefs", 2)
    assert [(r.key, r.value, r.sync_count) for r in page.records] == [("a", "late", 3)]


def test_import_over_the_limit_writes_nothing(target: ServerTarget) -> None:
    data = SourceRecords(1, (record("k", "x" * 1_048_576, 1),))
    with pytest.raises(LimitExceededError, match="1048576"):
        target.import_dataset(IDENTITY, "fat", data)
    assert target.export_dataset(IDENTITY, "fat").pairs == ()


def test_unsigned_admin_requests_are_refused(server: EmbeddedServer) -> None:
    body = json.dumps({"identityId": IDENTITY, "datasetName": "x", "records": []})
    response = urllib3.request("POST", f"{server.url}/admin/import", body=body)
    assert response.status in (401, 403)
    assert server.identity_db.identity(IDENTITY) is None


def test_checkpoint_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    checkpoint = Checkpoint(path, "us-east-1:1", "server")
    checkpoint.start_run()
    checkpoint.mark_dataset(IDENTITY, "prefs", 4)
    checkpoint.mark_identity_done(IDENTITY)
    checkpoint.save(force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json"]
    again = Checkpoint(path, "us-east-1:1", "server")
    assert again.resuming and again.is_done(IDENTITY)
    assert again.datasets_of(IDENTITY) == {"prefs": 4}
    again.finish_run()
    assert not Checkpoint(path, "us-east-1:1", "server").is_done(IDENTITY)
    with pytest.raises(ConfigError, match="another --checkpoint"):
        Checkpoint(path, "us-east-1:2", "server")


def test_digest_orders_pairs_and_counts_tombstones() -> None:
    assert dataset_digest([("b", "2"), ("a", None)]) == dataset_digest([("a", None), ("b", "2")])
    assert dataset_digest([("a", None)]) != dataset_digest([("a", "")])
