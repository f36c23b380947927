"""What crosses the wire in a GraphQL body: push records encoded straight to JSON bytes,
and answers decoded and checked field by field (a malformed answer is a `ServerError`)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from cogsync import _awsdatetime
from cogsync.exceptions import ServerError
from cogsync.models import (
    PatchOp,
    PulledRecords,
    Record,
    RecordPatch,
    RecordRow,
    patch_rows,
    record_rows,
)

__all__ = [
    "PushPatches",
    "answer_int",
    "answer_list",
    "answer_object",
    "answer_str",
    "decode_record",
    "decode_records",
    "dumps_body",
    "format_datetime",
    "optional_int",
    "parse_datetime",
]


def dumps_body(payload: dict[str, Any]) -> bytes:
    """The UTF-8 JSON body (orjson; the standard library's escapes for what orjson refuses,
    such as lone surrogates, so the server answers them as it always did)."""
    try:
        return orjson.dumps(payload, default=PushPatches.fragment)
    except orjson.JSONEncodeError:
        return json.dumps(payload, default=PushPatches.dicts).encode("utf-8")


class PushPatches:
    """A push's records in a request's variables, encoded when the body is: straight to
    JSON bytes, the same bytes as a dict per record would give without making the dicts
    (a 1,024-record push made 1,024 of them for the collector to trace)."""

    __slots__ = ("patches",)
    _OPEN = {op.value: b'{"op":' + orjson.dumps(op) + b',"key":' for op in PatchOp}

    def __init__(self, patches: Sequence[RecordPatch]) -> None:
        self.patches = patches

    @staticmethod
    def fragment(value: object) -> orjson.Fragment:
        """orjson's ``default``: the records as one JSON array."""
        if not isinstance(value, PushPatches):
            raise TypeError(f"cannot encode {type(value).__name__}")
        dumps, opening = orjson.dumps, PushPatches._OPEN
        items = [
            b"".join(
                (
                    opening[op],
                    dumps(key),
                    b',"value":',
                    dumps(text),
                    b',"syncCount":',
                    dumps(count),
                    b',"deviceLastModifiedDate":',
                    dumps(format_datetime(device)),
                    b"}",
                )
            )
            for op, key, text, count, device in patch_rows(value.patches)
        ]
        return orjson.Fragment(b"[" + b",".join(items) + b"]")

    @staticmethod
    def dicts(value: object) -> list[dict[str, Any]]:
        """The standard library's ``default``: one dict per record."""
        if not isinstance(value, PushPatches):
            raise TypeError(f"cannot encode {type(value).__name__}")
        return [
            {
                "op": op,
                "key": key,
                "value": text,
                "syncCount": count,
                "deviceLastModifiedDate": format_datetime(device),
            }
            for op, key, text, count, device in patch_rows(value.patches)
        ]


def parse_datetime(value: object) -> datetime | None:
    """An AWSDateTime string as an aware UTC datetime (None stays None; naive means UTC)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ServerError(f"expected an AWSDateTime string, got {value!r}")
    try:
        return _parse_loose(value)
    except ValueError as exc:
        raise ServerError(f"the server sent an invalid AWSDateTime {value!r}") from exc


_parse_loose = functools.lru_cache(maxsize=1024)(_awsdatetime.parse_loose)


def format_datetime(value: datetime | None) -> str | None:
    """A datetime as AWSDateTime (UTC, milliseconds, ``Z``); naive means UTC, None stays None."""
    return None if value is None else _format_moment(value)


@functools.lru_cache(maxsize=1024)  # a pushed batch shares a few edit times
def _format_moment(value: datetime) -> str:
    return _awsdatetime.format_datetime(_awsdatetime.as_utc(value))


def decode_record(item: Mapping[str, Any], value: str | None) -> Record:
    return Record(
        key=answer_str(item, "key"),
        value=value,
        sync_count=answer_int(item, "syncCount"),
        last_modified_date=parse_datetime(item.get("lastModifiedDate")),
        last_modified_by=item.get("lastModifiedBy"),
        device_last_modified_date=parse_datetime(item.get("deviceLastModifiedDate")),
    )


def decode_records(page: Mapping[str, Any]) -> PulledRecords:
    """The records of a listRecords page: `decode_record`'s checks, inlined for a page of
    1,024, kept as rows (`PulledRecords`: no `Record` object until one is asked for)."""
    items = page.get("records")
    if type(items) is not list:
        items = answer_list(page, "records")  # raises the error
    moments: dict[Any, datetime | None] = {None: None}  # a page shares a few time stamps

    def moment(text: Any) -> datetime | None:
        try:
            moments[text] = parse_datetime(text)
            return moments[text]
        except TypeError:  # not a string (unhashable)
            return parse_datetime(text)

    rows: list[RecordRow] = []
    for item in items:
        if type(item) is not dict:
            answer_list(page, "records")  # raises the error
        key, count = item.get("key"), item.get("syncCount")
        if type(key) is not str or type(count) is not int:
            rows.extend(record_rows([decode_record(item, item.get("value"))]))  # names the problem
            continue
        text, device_text = item.get("lastModifiedDate"), item.get("deviceLastModifiedDate")
        try:
            modified = moments[text]
        except (KeyError, TypeError):
            modified = moment(text)
        try:
            device = moments[device_text]
        except (KeyError, TypeError):
            device = moment(device_text)
        rows.append((key, item.get("value"), count, modified, item.get("lastModifiedBy"), device))
    return PulledRecords(rows)


def answer_object(data: Mapping[str, Any], field: str) -> dict[str, Any]:
    value = data.get(field)
    if not isinstance(value, dict):
        raise ServerError(f"the server's answer lacks {field}")
    return value


def answer_list(data: Mapping[str, Any], field: str) -> list[dict[str, Any]]:
    value = data.get(field)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ServerError(f"the server's answer has no list {field}")
    return value


def answer_str(data: Mapping[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str):
        raise ServerError(f"the server's answer has no string {field}")
    return value


def answer_int(data: Mapping[str, Any], field: str) -> int:
    value = data.get(field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ServerError(f"the server's answer has no integer {field}")
    return value


def optional_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
