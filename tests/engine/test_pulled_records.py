"""`PulledRecords`: pulled records kept as rows, each `Record` made only when asked for."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cogsync.engine.flow import plan_pull
from cogsync.exceptions import ServerError
from cogsync.models import PulledRecords, Record, RecordWrite, SyncWrites, record_rows
from cogsync.remote.payloads import decode_record, decode_records

T = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
RECORDS = (Record("a", "1", 2, T, "me", T), Record("b", None, 3), Record("é", "ü" * 3, 4, T))


def test_is_a_sequence_of_the_same_records() -> None:
    pulled = PulledRecords(record_rows(RECORDS))
    assert len(pulled) == 3 and list(pulled) == list(RECORDS) and tuple(pulled) == RECORDS
    assert [pulled[i] for i in range(-3, 3)] == [*RECORDS, *RECORDS]
    assert pulled[1:] == RECORDS[1:] and isinstance(pulled[1:], PulledRecords)
    assert pulled == RECORDS and list(RECORDS) == list(pulled) and pulled == list(RECORDS)
    assert RECORDS.__eq__(pulled) is NotImplemented  # so Python asks PulledRecords
    assert pulled != RECORDS[:2] and pulled != (*RECORDS[:2], Record("é", "x", 4, T))
    assert pulled != "abc" and PulledRecords() == ()
    assert hash(pulled) == hash(RECORDS) and "Record(key='a'" in repr(pulled)
    with pytest.raises(IndexError):
        pulled[3]


def test_rows_leave_out_only_dirty_and_revision() -> None:
    dirty = Record("k", "v", 5, T, "me", T, dirty=True, revision=9)
    assert record_rows([dirty]) == [("k", "v", 5, T, "me", T)]
    assert PulledRecords(record_rows([dirty]))[0] == Record("k", "v", 5, T, "me", T)
    pulled = PulledRecords(record_rows(RECORDS))
    assert record_rows(pulled) is pulled.rows
    assert PulledRecords.join([pulled[:1], list(RECORDS[1:])]) == RECORDS


def test_sync_writes_keep_pulled_rows_as_they_are() -> None:
    pulled = PulledRecords(record_rows(RECORDS))
    writes = SyncWrites(pulled=pulled)
    assert writes.pulled is pulled
    assert list(writes) == [RecordWrite(r, 0) for r in RECORDS]


def _item(record: Record) -> dict[str, Any]:
    def text(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat(timespec="milliseconds")[:-6] + "Z"

    return {
        "key": record.key,
        "value": record.value,
        "syncCount": record.sync_count,
        "lastModifiedDate": text(record.last_modified_date),
        "lastModifiedBy": record.last_modified_by,
        "deviceLastModifiedDate": text(record.device_last_modified_date),
    }


_MOMENTS = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
_RECORDS = st.builds(
    Record,
    key=st.text(min_size=1, max_size=20),
    value=st.none() | st.text(max_size=50),
    sync_count=st.integers(0, 2**31 - 1),
    last_modified_date=_MOMENTS,
    last_modified_by=st.none() | st.text(max_size=10),
    device_last_modified_date=_MOMENTS,
)


@given(st.lists(_RECORDS, max_size=30))
def test_decoding_a_page_gives_the_records_one_at_a_time_decoding_gives(
    records: list[Record],
) -> None:
    items = [_item(r) for r in records]
    page = decode_records({"records": items})
    assert isinstance(page, PulledRecords)
    assert page == [decode_record(item, item["value"]) for item in items] == records


def test_a_bad_item_in_a_page_is_a_server_error() -> None:
    good = _item(RECORDS[0])
    for bad in [
        {**good, "key": 5},
        {**good, "syncCount": "2"},
        "x",
        {**good, "lastModifiedDate": "no"},
    ]:
        with pytest.raises(ServerError):
            decode_records({"records": [good, bad]})


def test_a_decoded_page_is_nothing_the_collector_keeps_scanning() -> None:
    page = decode_records({"records": [_item(r) for r in RECORDS * 300]})
    gc.collect()
    assert not any(gc.is_tracked(row) for row in page.rows)
    assert not any(gc.is_tracked(record) for record in page.rows[0])


_LOCAL = st.dictionaries(
    st.sampled_from("abcdef"),
    st.builds(
        Record,
        key=st.just(""),
        value=st.none() | st.sampled_from(["1", "2", "3"]),
        sync_count=st.integers(0, 4),
        dirty=st.booleans(),
        revision=st.integers(0, 3),
    ),
).map(
    lambda d: {
        k: Record(k, r.value, r.sync_count, dirty=r.dirty, revision=r.revision)
        for k, r in d.items()
    }
)
_REMOTE = st.lists(
    st.builds(
        Record,
        key=st.sampled_from("abcdefgh"),
        value=st.none() | st.sampled_from(["1", "2", "3"]),
        sync_count=st.integers(0, 5),
    ),
    max_size=10,
)


@given(_LOCAL, _REMOTE, st.dictionaries(st.sampled_from("abc"), st.none() | st.just("0")))
def test_plan_pull_plans_rows_as_it_plans_records(
    local: dict[str, Record], remote: list[Record], bases: dict[str, str | None]
) -> None:
    plain = plan_pull(local, remote, bases)
    rows = plan_pull(local, PulledRecords(record_rows(remote)), bases)
    assert rows.writes == plain.writes and rows.conflicts == plain.conflicts
    assert rows.pulled == plain.pulled and rows.sync_writes() == plain.sync_writes()
    if not local:
        assert isinstance(rows.pulled, PulledRecords)
