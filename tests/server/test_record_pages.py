"""`page_rows`: a first page read along the primary key equals the sync-count index's."""

from __future__ import annotations

import sqlite3
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cogsync.models import PatchOp, RecordPatch
from cogsync.server.record_pages import page_rows
from cogsync.server.storage import ServerStorage
from cogsync.testing.store_contract import T0

IDENTITY = "us-east-1:00000000-0000-0000-0000-000000000001"
KEYS = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=6)
BATCHES = st.lists(
    st.dictionaries(KEYS, st.one_of(st.none(), st.text(max_size=3)), min_size=1, max_size=8),
    min_size=1,
    max_size=5,
)


def _push(storage: ServerStorage, batch: dict[str, str | None], counts: dict[str, int]) -> None:
    patches = [
        RecordPatch(PatchOp.REMOVE if v is None else PatchOp.REPLACE, k, v, counts.get(k, 0), T0)
        for k, v in batch.items()
    ]
    change = storage.push_records(
        IDENTITY, "ds", patches, client_request_id=str(uuid.uuid4()), device_id="d"
    )
    counts.update((k, change.sync_count) for k in batch)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=BATCHES, limit=st.integers(1, 12))
def test_first_pages_by_key_and_by_index_agree(
    tmp_path_factory: pytest.TempPathFactory, batches: list[dict[str, str | None]], limit: int
) -> None:
    path = tmp_path_factory.mktemp("pages") / "data.db"
    counts: dict[str, int] = {}
    with ServerStorage(path) as storage:
        for batch in batches:
            _push(storage, batch, counts)
    db = sqlite3.connect(path)
    try:
        every = db.execute(
            "SELECT key, value, sync_count, last_modified_date, last_modified_by, "
            "device_last_modified_date FROM records WHERE identity_id=? AND dataset=?",
            (IDENTITY, "ds"),
        ).fetchall()
        up_to = max(counts.values())
        expected = sorted(every, key=lambda row: (row[2], row[0].encode()))  # BINARY order
        assert page_rows(db, IDENTITY, "ds", 0, up_to, (0, ""), limit) == expected[:limit]
        for since in range(1, up_to + 1):  # later pulls go through the index
            wanted = [row for row in expected if row[2] > since]
            got = page_rows(db, IDENTITY, "ds", since, up_to, (since, ""), limit)
            assert got == wanted[:limit]
    finally:
        db.close()
