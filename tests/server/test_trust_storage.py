"""The replay memo and change log stay bounded: disk use after many rewrites, replays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from botocore.credentials import Credentials
from server_wire import PUSH, new_identity, signed_post

from cogsync.models import PatchOp, RecordPatch
from cogsync.server.bounds import ServerLimits
from cogsync.server.runner import EmbeddedServer
from cogsync.server.storage import ServerStorage


def push_body(name: str, request_id: str, values: dict[str, str], counts: dict[str, int]) -> bytes:
    records = [
        {"op": "REPLACE", "key": k, "value": v, "syncCount": counts.get(k, 0)}
        for k, v in values.items()
    ]
    batch = {"datasetName": name, "clientRequestId": request_id, "deviceId": "d-1"}
    variables = {"i": batch | {"protocolVersion": 1, "records": records}}
    return json.dumps({"query": PUSH, "variables": variables}).encode()


async def rewrite(
    srv: EmbeddedServer, creds: Credentials, times: int, size: int, records: int = 16
) -> list[bytes]:
    """Rewrite dataset "d" (``records`` records, ``size`` bytes) ``times``; the answers."""
    counts: dict[str, int] = {}
    answers = []
    for n in range(times):
        letter = chr(ord("a") + n % 26)
        values = {f"k{i:02}": letter * (size // records - 3) for i in range(records)}
        status, raw = await signed_post(srv, creds, push_body("d", f"r-{n}", values, counts))
        assert status == 200 and b'"errors"' not in raw, raw[:300]
        answer: Any = json.loads(raw)["data"]["pushRecords"]
        counts = {r["key"]: r["syncCount"] for r in answer["records"]}
        answers.append(raw)
    return answers


def disk_bytes(data: Path) -> int:
    return sum(p.stat().st_size for p in data.glob("sync.db*"))


async def test_rewrites_keep_the_data_file_within_a_small_factor_of_live_data(
    tmp_path: Path,
) -> None:
    live = 256 * 1024
    async with EmbeddedServer(tmp_path / "data") as srv:
        _, creds = await new_identity(srv)
        await rewrite(srv, creds, 50, live)
    # before the bound every answer was kept with its values: 50 x 256 KB = 12.8 MB
    assert disk_bytes(tmp_path / "data") < 3 * live


async def test_a_replay_within_the_bound_is_byte_identical_and_older_ids_are_new(
    tmp_path: Path,
) -> None:
    limits = ServerLimits(replay_requests=4)
    async with EmbeddedServer(tmp_path / "data", server_limits=limits) as srv:
        _, creds = await new_identity(srv)
        first = (await rewrite(srv, creds, 1, 4096))[0]
        values = {f"k{i:02}": "a" * 253 for i in range(16)}
        again = push_body("d", "r-0", values, {})
        assert (await signed_post(srv, creds, again))[1] == first  # values included
        for n in range(1, 5):  # four newer ids of the dataset push r-0 out of the memo
            batch = push_body("d", f"n-{n}", {f"o{n}": "x"}, {})
            assert b'"errors"' not in (await signed_post(srv, creds, batch))[1]
        _, raw = await signed_post(srv, creds, again)
        assert json.loads(raw)["errors"][0]["errorType"] == "ConflictException"  # a new batch


def test_a_replay_leaves_out_records_a_later_batch_replaced(tmp_path: Path) -> None:
    with ServerStorage(tmp_path / "sync.db") as storage:
        put = PatchOp.REPLACE
        first = storage.push_records(
            "id-1",
            "d",
            [RecordPatch(put, "a", "1", 0), RecordPatch(put, "b", "2", 0)],
            client_request_id="r-1",
            device_id="dev",
        )
        storage.push_records(
            "id-1", "d", [RecordPatch(put, "b", "3", 1)], client_request_id="r-2", device_id="x"
        )
        replay = storage.push_records("id-1", "d", [], client_request_id="r-1", device_id="dev")
        assert not replay.applied and replay.sync_count == first.sync_count == 1
        assert replay.records == first.records[:1]  # "b" now holds another batch's value


def _rewrite_key_heavy(path: Path, retention: ServerLimits, times: int) -> int:
    """Rewrite 250 records of 400 bytes ``times`` through the write path; the live bytes."""
    counts: dict[str, int] = {}
    with ServerStorage(path, retention=retention) as storage:
        for n in range(times):
            letter = chr(ord("a") + n % 26)
            patches = [
                RecordPatch(PatchOp.REPLACE, f"k{i:03}", letter * 396, counts.get(f"k{i:03}", 0))
                for i in range(250)
            ]
            change = storage.push_records(
                "id-1", "d", patches, client_request_id=f"r-{n}", device_id="d-1"
            )
            counts = {r.key: r.sync_count for r in change.records}
        logged = sum(len(c.keys) for c in storage.read_changes(limit=10**6))
    if retention.change_log_keys:
        assert logged <= retention.change_log_keys
    return 250 * 400


def _disk_bytes_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def test_the_change_log_of_a_key_heavy_dataset_is_bounded_by_count(tmp_path: Path) -> None:
    # 1,000 records of 1 KB rewritten 1,000 times grew the file to 13 MB (1 MB live): every
    # push logged all its keys, kept until they aged out (30 days).
    live = _rewrite_key_heavy(tmp_path / "bounded.db", ServerLimits(), 300)
    bounded = _disk_bytes_of(tmp_path / "bounded.db")
    assert bounded < 5 * live  # records, 32 remembered request ids, 10,000 logged keys
    # the same rewrites with no count bound: the log's keys outgrow everything else
    _rewrite_key_heavy(tmp_path / "unbounded.db", ServerLimits(change_log_keys=0), 300)
    assert _disk_bytes_of(tmp_path / "unbounded.db") > 2 * bounded
