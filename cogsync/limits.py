"""The limits every backend and the client enforce, and the checks that apply them.

The same functions run in the client's local store and in ``cogsync serve`` so that a
limit means exactly the same thing on both sides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from cogsync import exceptions

__all__ = [
    "DEFAULT_LIMITS",
    "RECORD_SIZE_SQL",
    "Limits",
    "check_dataset_count",
    "check_dataset_sizes",
    "check_dataset_totals",
    "merged_dataset_name",
    "record_size",
    "validate_key",
    "validate_name",
    "validate_value",
]

_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-identity limits (defaults are Cognito Sync's)."""

    max_datasets: int = 20
    max_records: int = 1024
    max_dataset_bytes: int = 1_048_576
    max_key_bytes: int = 128
    max_name_length: int = 128


DEFAULT_LIMITS = Limits()


def validate_name(name: object, limits: Limits = DEFAULT_LIMITS) -> str:
    """Return ``name`` if it is a valid dataset name, else raise `InvalidNameError`."""
    if (
        not isinstance(name, str)
        or len(name) > limits.max_name_length
        or not _NAME_RE.fullmatch(name)
    ):
        raise exceptions.InvalidNameError(
            f"invalid dataset name {name!r}: use 1-{limits.max_name_length} characters "
            "from A-Z a-z 0-9 _ . : -"
        )
    return name


def validate_key(key: object, limits: Limits = DEFAULT_LIMITS) -> str:
    """Return ``key`` if it is a valid record key (1-128 UTF-8 bytes), else raise."""
    if not isinstance(key, str):
        raise exceptions.InvalidKeyError(f"record key must be a str, got {type(key).__name__}")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise exceptions.InvalidKeyError(f"record key {key!r} is not valid Unicode text") from exc
    if not 1 <= size <= limits.max_key_bytes:
        raise exceptions.InvalidKeyError(
            f"record key {key[:40]!r} is {size} UTF-8 bytes; keys must be 1-"
            f"{limits.max_key_bytes} bytes"
        )
    return key


def validate_value(value: object) -> str:
    """Return ``value`` if it is a str, else raise `InvalidValueError`."""
    if not isinstance(value, str):
        raise exceptions.InvalidValueError(
            f"record value must be a str, got {type(value).__name__}: store JSON as text "
            "(json.dumps) and use remove() to delete a record"
        )
    if value.isascii():  # ASCII text (a flag on the str: no scan, no copy) always encodes
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise exceptions.InvalidValueError(
            "record value is not valid Unicode text (lone surrogate)"
        ) from exc
    return value


def record_size(key: str, value: str | None) -> int:
    """Bytes a record counts towards its dataset's size: UTF-8 key + value; 0 if removed."""
    if value is None:
        return 0
    return _utf8_bytes(key) + _utf8_bytes(value)


RECORD_SIZE_SQL = "length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))"
"""`record_size` in SQL over a row's ``key`` and ``value`` columns (NULL for a tombstone),
so client and server stores measure sizes where the values lie, without reading them."""


def _utf8_bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def check_dataset_totals(
    name: str,
    current: Mapping[str, str | None],
    changes: Mapping[str, str | None],
    limits: Limits = DEFAULT_LIMITS,
    *,
    rest_count: int = 0,
    rest_bytes: int = 0,
) -> tuple[int, int]:
    """Check that applying ``changes`` to the live records ``current`` stays within limits.

    ``current`` maps key to value (None = removed/tombstone, not counted). Returns the
    (record_count, size_in_bytes) after the change, or raises a `LimitExceededError`
    subclass naming the limit. ``rest_count`` and ``rest_bytes`` add live records that
    ``current`` leaves out, so a store can pass only the changed keys plus an aggregate.
    """
    sizes = {key: record_size(key, value) for key, value in current.items() if value is not None}
    return check_dataset_sizes(
        name, sizes, changes, limits, rest_count=rest_count, rest_bytes=rest_bytes
    )


def check_dataset_sizes(
    name: str,
    live_sizes: Mapping[str, int],
    changes: Mapping[str, str | None],
    limits: Limits = DEFAULT_LIMITS,
    *,
    rest_count: int = 0,
    rest_bytes: int = 0,
) -> tuple[int, int]:
    """`check_dataset_totals` given each live record's `record_size` instead of its value.

    ``live_sizes`` maps every live key (removed ones left out) to its size, so a store can
    compute sizes where the values lie (SQL ``length``) without reading the values.
    """
    count = rest_count + len(live_sizes)
    size = rest_bytes + sum(live_sizes.values())
    for key, new in changes.items():
        old = live_sizes.get(key)
        if old is not None:
            count -= 1
            size -= old
        if new is not None:
            count += 1
            size += record_size(key, new)
    _refuse_above(
        exceptions.RecordLimitExceededError,
        count,
        limits.max_records,
        f"dataset {name!r} would hold {count} records; the limit is {limits.max_records}: "
        "remove records or use another dataset",
    )
    _refuse_above(
        exceptions.DatasetSizeLimitExceededError,
        size,
        limits.max_dataset_bytes,
        f"dataset {name!r} would hold {size} bytes of keys and values; the limit is "
        f"{limits.max_dataset_bytes}: remove records or split the data across datasets",
    )
    return count, size


def check_dataset_count(count_after: int, limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise `DatasetLimitExceededError` if an identity would hold ``count_after`` datasets."""
    _refuse_above(
        exceptions.DatasetLimitExceededError,
        count_after,
        limits.max_datasets,
        f"an identity may hold at most {limits.max_datasets} datasets (this would make "
        f"{count_after}): delete a dataset first",
    )


def _refuse_above(
    error: type[exceptions.LimitExceededError], attempted: int, limit: int, message: str
) -> None:
    if attempted > limit:
        raise error(message, limit=limit, attempted=attempted)


def merged_dataset_name(name: str, source_identity_id: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """The name ``<name>.<sourceIdentityId>`` a merged dataset takes (cut to the name limit)."""
    room = max(1, limits.max_name_length - len(source_identity_id) - 1)
    return f"{name[:room]}.{source_identity_id}"[: limits.max_name_length]
