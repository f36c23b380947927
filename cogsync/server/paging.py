"""Request parameters of the storage reads and writes: page tokens, page sizes, ids.

Page tokens are opaque to clients: base64url JSON carrying a format version (``v``) and
the position to continue from. Anything else a client passes back is refused with an
`InvalidRequestError` that says how to page correctly.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cogsync.server.wire import InvalidRequestError

__all__ = [
    "DATASET_PAGE_SIZE",
    "RECORD_PAGE_SIZE",
    "bad_token",
    "check_id",
    "decode_token",
    "encode_token",
    "page_limit",
    "record_position",
]

RECORD_PAGE_SIZE = 1024
"""Default and largest number of records in one listRecords page."""
DATASET_PAGE_SIZE = 100
"""Default and largest number of datasets in one listDatasets page."""
_MAX_ID_LENGTH = 256
_MAX_TOKEN_LENGTH = 4096


def encode_token(payload: dict[str, Any]) -> str:
    """A page token carrying ``payload``."""
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def bad_token(what: str) -> InvalidRequestError:
    """The error for a page token of ``what`` that this server did not hand out."""
    return InvalidRequestError(
        f"invalid nextToken for {what}: pass the nextToken of the previous page unchanged "
        "(with the same other arguments), or omit it to start from the first page"
    )


def decode_token(token: object, what: str) -> dict[str, Any]:
    """The payload of a page token of ``what``, or raise `InvalidRequestError`."""
    problem = bad_token(what)
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_LENGTH:
        raise problem
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise problem from exc
    if not isinstance(data, dict) or data.get("v") != 1:
        raise problem
    return data


def record_position(
    token: str, dataset_name: str, last_sync_count: int, current: int
) -> tuple[int, tuple[int, str]]:
    """``(upTo, (sync count, key))`` a listRecords page token continues from.

    The token must have been handed out for the same dataset and ``last_sync_count``, and
    its position must lie within ``last_sync_count < count <= upTo <= current``.
    """
    data = decode_token(token, f"listRecords of {dataset_name!r}")
    up_to, count, key = data.get("u"), data.get("s"), data.get("k")
    valid = (
        data.get("d") == dataset_name
        and data.get("l") == last_sync_count
        and all(isinstance(v, int) and not isinstance(v, bool) for v in (up_to, count))
        and isinstance(key, str)
    )
    if not valid or not last_sync_count < count <= up_to <= current:  # type: ignore[operator]
        raise bad_token(f"listRecords of {dataset_name!r}")
    return up_to, (count, key)  # type: ignore[return-value]


def page_limit(limit: int | None, largest: int) -> int:
    """The page size for a requested ``limit`` (None: ``largest``)."""
    if limit is None:
        return largest
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidRequestError(f"limit must be a positive integer (at most {largest})")
    return min(limit, largest)


def check_id(value: object, what: str) -> str:
    """``value`` if it is a usable client id (request id, device id), else refuse it."""
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_ID_LENGTH:
        raise InvalidRequestError(
            f"{what} must be a string of 1-{_MAX_ID_LENGTH} characters (a UUID is ideal)"
        )
    return value
