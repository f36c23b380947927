"""The server's files are built and upgraded by named migrations; old data directories open."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials
from server_wire import LIST_DATASETS, LIST_RECORDS, http_client, identity_client, op

from cogsync.exceptions import ConfigError
from cogsync.models import PatchOp, RecordPatch
from cogsync.server.credentials import IdentityDatabase
from cogsync.server.migrations import (
    IDENTITY_MIGRATIONS,
    SYNC_MIGRATIONS,
    applied_migrations,
)
from cogsync.server.runner import EmbeddedServer
from cogsync.server.storage import ServerStorage

FIXTURE = Path(__file__).with_name("fixtures") / "data_v0"


def migrations_of(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return applied_migrations(conn)
    finally:
        conn.close()


@pytest.fixture
def old_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    assert migrations_of(data / "sync.db") == migrations_of(data / "identity.db") == []
    return data


def guest_credentials(srv: EmbeddedServer, identity_id: str) -> Credentials:
    creds = identity_client(srv).get_credentials_for_identity(IdentityId=identity_id)
    keys = creds["Credentials"]
    return Credentials(keys["AccessKeyId"], keys["SecretKey"], keys["SessionToken"])


def developer_credentials(srv: EmbeddedServer, user: str) -> tuple[str, Credentials]:
    answer = identity_client(srv, admin=True).get_open_id_token_for_developer_identity(
        IdentityPoolId=srv.config.identity_pool_id, Logins={srv.developer_provider: user}
    )
    logins = {"cognito-identity.amazonaws.com": answer["Token"]}
    creds = identity_client(srv).get_credentials_for_identity(
        IdentityId=answer["IdentityId"], Logins=logins
    )["Credentials"]
    keys = Credentials(creds["AccessKeyId"], creds["SecretKey"], creds["SessionToken"])
    return answer["IdentityId"], keys


async def test_a_data_directory_from_before_named_migrations_still_serves(old_data: Path) -> None:
    ids: dict[str, Any] = json.loads((old_data / "identities.json").read_text("utf-8"))
    pool_id = json.loads((old_data / "cogsync.json").read_text("utf-8"))["identity_pool_id"]
    admin = json.loads((old_data / "admin.json").read_text("utf-8"))
    async with EmbeddedServer(old_data) as srv:
        assert srv.config.identity_pool_id == pool_id
        assert srv.admin_credentials.access_key_id == admin["access_key_id"]
        assert srv.admin_credentials.secret_access_key == admin["secret_access_key"]

        creds = await asyncio.to_thread(guest_credentials, srv, ids["guest"])
        async with http_client(srv, creds) as session:
            page = await session.execute(op(LIST_RECORDS, n="settings", s=0))
        records = page["listRecords"]
        assert records["syncCount"] == 2
        assert {r["key"]: (r["value"], r["syncCount"]) for r in records["records"]} == {
            "lang": ("en", 1),
            "émoji-😀": ("€uro", 1),
            "theme": (None, 2),
        }

        user = ids["developer_user"]
        identity_id, creds = await asyncio.to_thread(developer_credentials, srv, user)
        assert identity_id == ids["developer"]
        async with http_client(srv, creds) as session:
            listed = await session.execute(op(LIST_DATASETS))
            notes = await session.execute(op(LIST_RECORDS, n="notes", s=0))
        datasets = {d["name"]: d["deleted"] for d in listed["listDatasets"]["datasets"]}
        assert datasets == {"notes": False, "old": True}
        assert [(r["key"], r["value"]) for r in notes["listRecords"]["records"]] == [
            ("draft", "hello")
        ]
        assert srv.storage is not None
        assert len(srv.storage.read_changes()) == 5
    assert migrations_of(old_data / "sync.db") == [m.__name__ for m in SYNC_MIGRATIONS]
    assert migrations_of(old_data / "identity.db") == [m.__name__ for m in IDENTITY_MIGRATIONS]


def test_new_files_record_every_migration_once(tmp_path: Path) -> None:
    for _ in range(2):
        ServerStorage(tmp_path / "sync.db").close()
        IdentityDatabase(tmp_path / "identity.db").close()
    assert migrations_of(tmp_path / "sync.db") == [
        "m001_sync_tables",
        "m002_bounded_history",
        "m003_change_log_key_totals",
        "m004_records_in_rowid_table",
    ]
    assert migrations_of(tmp_path / "identity.db") == ["m001_identity_tables"]


def test_files_from_a_newer_version_are_refused(tmp_path: Path) -> None:
    ServerStorage(tmp_path / "sync.db").close()
    IdentityDatabase(tmp_path / "identity.db").close()
    for name in ("sync.db", "identity.db"):
        conn = sqlite3.connect(tmp_path / name)
        with conn:
            conn.execute("INSERT INTO _migrations VALUES ('m999_future', '2030-01-01')")
        conn.close()
    with pytest.raises(ConfigError, match="newer cogsync"):
        ServerStorage(tmp_path / "sync.db")
    with pytest.raises(ConfigError, match="newer cogsync"):
        IdentityDatabase(tmp_path / "identity.db")


def _records_table(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT sql FROM sqlite_master WHERE name='records'").fetchone()
        return str(row[0])
    finally:
        conn.close()


def test_old_records_move_to_a_rowid_table_unchanged(old_data: Path) -> None:
    conn = sqlite3.connect(old_data / "sync.db")
    before = conn.execute("SELECT * FROM records ORDER BY 1, 2, 3").fetchall()
    conn.close()
    assert before and "WITHOUT ROWID" in _records_table(old_data / "sync.db")
    ServerStorage(old_data / "sync.db").close()
    assert "WITHOUT ROWID" not in _records_table(old_data / "sync.db")
    conn = sqlite3.connect(old_data / "sync.db")
    try:
        assert conn.execute("SELECT * FROM records ORDER BY 1, 2, 3").fetchall() == before
        indexes = {r[0] for r in conn.execute("SELECT name FROM pragma_index_list('records')")}
        assert "records_by_sync_count" in indexes
    finally:
        conn.close()


def test_records_of_one_kilobyte_need_no_overflow_pages(tmp_path: Path) -> None:
    """In the old WITHOUT ROWID table each 1 KB record took an overflow page of its own
    (~4.8x the data); the rowid table keeps such rows in their pages."""
    records = 400
    with ServerStorage(tmp_path / "sync.db") as storage:
        empty = storage.path.stat().st_size
        patches = [
            RecordPatch(PatchOp.REPLACE, f"r{i:04d}", f"{i:04d}" * 250, 0) for i in range(records)
        ]
        storage.push_records("us-east-1:a", "ds", patches, client_request_id="r", device_id="d")
        conn = sqlite3.connect(tmp_path / "sync.db")
        try:
            (pages,) = conn.execute("PRAGMA page_count").fetchone()
            (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        finally:
            conn.close()
    assert (pages * page_size - empty) < 2 * records * 1000
